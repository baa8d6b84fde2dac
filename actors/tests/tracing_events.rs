//! Every restart is a `tracing` event carrying the reason.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use troupe_actors::SupervisorSpec;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn restart_emits_an_event_with_the_panic_message() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    actix::System::new().block_on(async {
        let log = Log::default();
        let tree = SupervisorSpec::new("root")
            .child(probe("w", &log))
            .start()
            .unwrap();
        let w = tree.actor::<Probe>("w").unwrap();
        assert!(w.send(Panic).await.is_err());
        assert_eq!(w.send(Inc).await, Ok(1));
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("restarting child"))
        .unwrap_or_else(|| panic!("no restart event in: {text}"));
    assert!(line.contains("child=w"), "{line}");
    assert!(line.contains("probe w asked to panic"), "{line}");
    assert!(line.contains("supervisor=root"), "{line}");
}
