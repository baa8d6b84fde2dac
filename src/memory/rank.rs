//! Recall ranking as in Generative Agents (Park et al., 2023), as a pure
//! function so it can be tested without a store and reused by any backend.
//!
//! Each candidate memory gets three factors:
//! - **recency**: `0.995 ^ hours` since `lastAccessedAt` (a time in the
//!   future counts as 0 hours);
//! - **importance**: its 1–10 importance;
//! - **relevance**: lexical BM25 (k1 = 1.2, b = 0.75) of the query against
//!   the memory's content, over the candidates as the corpus. Tokens are
//!   maximal runs of alphanumeric characters, lowercased; no model or
//!   network is needed, so recall works offline and deterministically.
//!
//! Each factor is min-max normalised over the candidates to `[0, 1]` (a
//! factor that is equal for all candidates becomes 0 for all: it tells them
//! apart in no way), then the score is the weighted sum
//! ([`RecallWeights`], equal weights by default). Ties go to the newer
//! memory (higher UUID v7), so the order is deterministic.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::Memory;
use crate::store::StoreError;

/// Recency decay per hour since last access, from the paper.
pub(crate) const RECENCY_DECAY_PER_HOUR: f64 = 0.995;
/// BM25 term-frequency saturation.
const BM25_K1: f64 = 1.2;
/// BM25 length normalisation.
const BM25_B: f64 = 0.75;

/// How much each factor counts in a recall score. The paper weighs them
/// equally (the default); an operator may favour, say, relevance for a
/// search-like agent. Weights are relative: only their ratios matter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RecallWeights {
    /// Weight of recency.
    pub recency: f64,
    /// Weight of importance.
    pub importance: f64,
    /// Weight of relevance.
    pub relevance: f64,
}

impl Default for RecallWeights {
    fn default() -> Self {
        RecallWeights {
            recency: 1.0,
            importance: 1.0,
            relevance: 1.0,
        }
    }
}

impl RecallWeights {
    /// Rejects weights that would make scores meaningless (negative, NaN,
    /// infinite), naming the weight.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        for (field, w) in [
            ("recallWeights.recency", self.recency),
            ("recallWeights.importance", self.importance),
            ("recallWeights.relevance", self.relevance),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(StoreError::InvalidInput {
                    field,
                    reason: format!("must be a finite number >= 0, got {w}"),
                });
            }
        }
        Ok(())
    }
}

/// A ranked memory with its score and normalised factors (each in `[0, 1]`),
/// kept so a caller can explain or log why a memory reached the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredMemory {
    /// The memory.
    pub memory: Memory,
    /// The weighted sum of the three factors.
    pub score: f64,
    /// Normalised recency.
    pub recency: f64,
    /// Normalised importance.
    pub importance: f64,
    /// Normalised relevance.
    pub relevance: f64,
}

/// Splits text into lowercase alphanumeric tokens (the BM25 vocabulary).
pub(crate) fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .collect()
}

/// Words too common to say anything about relevance: without this, "the" in
/// a question matches every memory that says "the" as strongly as the word
/// the question is about.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
    "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "of", "on", "or", "our", "should", "so", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "to", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your",
];

/// Raw recency of a memory at `now`: `0.995 ^ hours since last access`, in
/// `(0, 1]`.
pub(crate) fn recency(last_accessed_at: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    let millis = (now - last_accessed_at).num_milliseconds().max(0);
    let hours = millis as f64 / 3_600_000.0;
    RECENCY_DECAY_PER_HOUR.powf(hours)
}

/// BM25 of `query` against each document, in input order.
pub(crate) fn bm25(query: &str, documents: &[&str]) -> Vec<f64> {
    let docs: Vec<Vec<String>> = documents.iter().map(|d| tokenize(d)).collect();
    let terms: HashSet<String> = tokenize(query).into_iter().collect();
    if docs.is_empty() || terms.is_empty() {
        return vec![0.0; docs.len()];
    }
    let n = docs.len() as f64;
    let total: usize = docs.iter().map(Vec::len).sum();
    let avg_len = if total == 0 { 1.0 } else { total as f64 / n };
    let freqs: Vec<HashMap<&str, usize>> = docs
        .iter()
        .map(|d| {
            let mut f = HashMap::new();
            for t in d {
                *f.entry(t.as_str()).or_insert(0) += 1;
            }
            f
        })
        .collect();
    let idf: HashMap<&str, f64> = terms
        .iter()
        .map(|t| {
            let containing = freqs.iter().filter(|f| f.contains_key(t.as_str())).count() as f64;
            let idf = (1.0 + (n - containing + 0.5) / (containing + 0.5)).ln();
            (t.as_str(), idf)
        })
        .collect();
    docs.iter()
        .zip(&freqs)
        .map(|(doc, f)| {
            let len_norm = 1.0 - BM25_B + BM25_B * doc.len() as f64 / avg_len;
            idf.iter()
                .map(|(t, idf)| {
                    let tf = f.get(t).copied().unwrap_or(0) as f64;
                    if tf == 0.0 {
                        0.0
                    } else {
                        idf * tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * len_norm)
                    }
                })
                .sum()
        })
        .collect()
}

/// About one minute of decay (0.995^(1/60) ≈ 1 − 8.4e-5).
const RECENCY_RESOLUTION: f64 = 8e-5;

fn spread(values: &[f64]) -> f64 {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max - min
}

/// Min-max normalisation to `[0, 1]`; all zeros when the values do not
/// differ (or are not finite).
fn normalise(values: &[f64]) -> Vec<f64> {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    if !range.is_finite() || range <= 0.0 {
        return vec![0.0; values.len()];
    }
    values
        .iter()
        .map(|v| {
            let x = (v - min) / range;
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Ranks `memories` for `query` at `now` and returns the best `limit`, best
/// first. Pure: no clock, no I/O. Archived memories are ranked like any
/// other; callers pass only what may be recalled.
pub(crate) fn rank(
    memories: Vec<Memory>,
    query: &str,
    now: DateTime<Utc>,
    weights: &RecallWeights,
    limit: usize,
) -> Vec<ScoredMemory> {
    if memories.is_empty() || limit == 0 {
        return Vec::new();
    }
    let recency_raw: Vec<f64> = memories
        .iter()
        .map(|m| recency(m.last_accessed_at, now))
        .collect();
    let importance_raw: Vec<f64> = memories.iter().map(|m| f64::from(m.importance)).collect();
    let documents: Vec<&str> = memories.iter().map(|m| m.content.as_str()).collect();
    let relevance_raw = bm25(query, &documents);
    // Min-max normalisation would stretch a gap of milliseconds into the
    // whole 0–1 range; recencies closer than a minute's decay count as equal.
    let rec = if spread(&recency_raw) < RECENCY_RESOLUTION {
        vec![0.0; recency_raw.len()]
    } else {
        normalise(&recency_raw)
    };
    let imp = normalise(&importance_raw);
    let rel = normalise(&relevance_raw);
    let mut scored: Vec<ScoredMemory> = memories
        .into_iter()
        .enumerate()
        .map(|(i, memory)| {
            let score =
                weights.recency * rec[i] + weights.importance * imp[i] + weights.relevance * rel[i];
            ScoredMemory {
                memory,
                score: if score.is_finite() { score } else { 0.0 },
                recency: rec[i],
                importance: imp[i],
                relevance: rel[i],
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| b.memory.id.cmp(&a.memory.id))
    });
    scored.truncate(limit);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryScope, NewMemory};
    use chrono::Duration;
    use proptest::prelude::*;

    fn memory(content: &str, importance: u8, hours_ago: i64, now: DateTime<Utc>) -> Memory {
        let mut m = NewMemory::new(&MemoryScope::agent("a"), "fact", content, importance)
            .into_memory(now - Duration::hours(hours_ago));
        m.last_accessed_at = now - Duration::hours(hours_ago);
        m
    }

    fn only(recency: f64, importance: f64, relevance: f64) -> RecallWeights {
        RecallWeights {
            recency,
            importance,
            relevance,
        }
    }

    #[test]
    fn tokenize_lowercases_alphanumeric_runs() {
        assert_eq!(
            tokenize("Hello, World! rust-2024 ÉTÉ"),
            vec!["hello", "world", "rust", "2024", "été"]
        );
        assert!(tokenize("  ,;- ").is_empty());
    }

    #[test]
    fn recency_decays_per_hour_and_clamps_future() {
        let now = Utc::now();
        assert_eq!(recency(now, now), 1.0);
        assert!((recency(now - Duration::hours(1), now) - 0.995).abs() < 1e-12);
        assert!((recency(now - Duration::hours(100), now) - 0.995f64.powi(100)).abs() < 1e-12);
        assert_eq!(recency(now + Duration::hours(5), now), 1.0);
    }

    #[test]
    fn bm25_prefers_matching_and_rare_terms() {
        let docs = [
            "the user prefers dark mode",
            "the build uses cargo",
            "the the the",
        ];
        let s = bm25("dark mode", &docs);
        assert!(s[0] > 0.0);
        assert_eq!(s[1], 0.0);
        assert_eq!(s[2], 0.0);
        assert_eq!(bm25("", &docs), vec![0.0; 3]);
        assert!(bm25("anything", &[]).is_empty());
    }

    #[test]
    fn equal_weights_combine_all_three() {
        let now = Utc::now();
        let memories = vec![
            memory("user likes rust", 2, 200, now),
            memory("weather was fine", 10, 0, now),
            memory("rust rust rust compiler", 9, 1, now),
        ];
        let ranked = rank(memories, "rust", now, &RecallWeights::default(), 3);
        assert_eq!(ranked[0].memory.content, "rust rust rust compiler");
        assert!(ranked.iter().all(|s| s.score.is_finite()));
        assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn limit_and_empty_input() {
        let now = Utc::now();
        assert!(rank(Vec::new(), "x", now, &RecallWeights::default(), 5).is_empty());
        let memories = vec![memory("a", 1, 0, now), memory("b", 2, 0, now)];
        assert!(rank(memories.clone(), "a", now, &RecallWeights::default(), 0).is_empty());
        assert_eq!(
            rank(memories, "a", now, &RecallWeights::default(), 1).len(),
            1
        );
    }

    #[test]
    fn weights_are_validated() {
        assert!(RecallWeights::default().validate().is_ok());
        let err = only(-1.0, 1.0, 1.0).validate().unwrap_err();
        assert!(err.to_string().contains("recallWeights.recency"), "{err}");
        let err = only(1.0, f64::NAN, 1.0).validate().unwrap_err();
        assert!(
            err.to_string().contains("recallWeights.importance"),
            "{err}"
        );
    }

    fn arb_memories() -> impl Strategy<Value = Vec<(String, u8, i64)>> {
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "rust compiler borrow",
                    "dark mode preference",
                    "cargo build rust",
                    "meeting on monday",
                    "x",
                    "rust",
                ])
                .prop_map(str::to_owned),
                1u8..=10,
                -5i64..100_000,
            ),
            0..24,
        )
    }

    fn build(spec: &[(String, u8, i64)], now: DateTime<Utc>) -> Vec<Memory> {
        spec.iter()
            .map(|(c, i, h)| memory(c, *i, *h, now))
            .collect()
    }

    proptest! {
        #[test]
        fn scores_are_finite_and_bounded(spec in arb_memories(), query in "[a-z ]{0,20}") {
            let now = Utc::now();
            let n = spec.len();
            let ranked = rank(build(&spec, now), &query, now, &RecallWeights::default(), n);
            prop_assert_eq!(ranked.len(), n);
            for s in &ranked {
                prop_assert!(s.score.is_finite());
                prop_assert!((0.0..=3.0).contains(&s.score));
                for f in [s.recency, s.importance, s.relevance] {
                    prop_assert!((0.0..=1.0).contains(&f));
                }
            }
            prop_assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
        }

        #[test]
        fn importance_alone_orders_by_importance(spec in arb_memories()) {
            let now = Utc::now();
            let ranked = rank(build(&spec, now), "rust", now, &only(0.0, 1.0, 0.0), spec.len());
            prop_assert!(ranked.windows(2).all(|w| w[0].memory.importance >= w[1].memory.importance));
        }

        #[test]
        fn recency_alone_orders_by_last_access(spec in arb_memories()) {
            let now = Utc::now();
            let ranked = rank(build(&spec, now), "rust", now, &only(1.0, 0.0, 0.0), spec.len());
            let ordered = ranked.windows(2).all(|w| {
                recency(w[0].memory.last_accessed_at, now) >= recency(w[1].memory.last_accessed_at, now)
            });
            // Recencies all within a minute's decay of each other are ties.
            let raw: Vec<f64> = ranked.iter().map(|s| recency(s.memory.last_accessed_at, now)).collect();
            prop_assert!(ordered || spread(&raw) < RECENCY_RESOLUTION);
        }

        #[test]
        fn relevance_alone_orders_by_bm25(spec in arb_memories(), query in "(rust|dark|cargo|monday| )*") {
            let now = Utc::now();
            let memories = build(&spec, now);
            let docs: Vec<&str> = memories.iter().map(|m| m.content.as_str()).collect();
            let raw: HashMap<uuid::Uuid, f64> = memories
                .iter()
                .zip(bm25(&query, &docs))
                .map(|(m, s)| (m.id, s))
                .collect();
            let ranked = rank(memories.clone(), &query, now, &only(0.0, 0.0, 1.0), spec.len());
            prop_assert!(ranked.windows(2).all(|w| raw[&w[0].memory.id] >= raw[&w[1].memory.id]));
        }

        #[test]
        fn dominating_memory_ranks_higher(spec in arb_memories()) {
            let now = Utc::now();
            let memories = build(&spec, now);
            let ranked = rank(memories, "rust", now, &RecallWeights::default(), spec.len());
            for (i, a) in ranked.iter().enumerate() {
                for b in &ranked[..i] {
                    // Nothing ranked above `a` may be strictly worse on every factor.
                    prop_assert!(!(a.recency > b.recency && a.importance > b.importance && a.relevance > b.relevance));
                }
            }
        }
    }
}
