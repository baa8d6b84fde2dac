//! The scanner behind `analyze_code`: metrics and findings for source text,
//! with no I/O.
//!
//! Everything is computed by deterministic text rules (no model, no
//! compiler), so the same input always gives the same report: line counts
//! (code, blank, comment), the longest function-like block, TODO/FIXME
//! markers, lines over [`LONG_LINE`] characters, the deepest nesting, and a
//! naive language guess (file extension, else keyword scores). Findings
//! name what crosses a threshold. Strings, char literals and comments are
//! skipped when braces are counted; languages without braces are measured by
//! indentation.

use std::path::Path;

use serde::Serialize;

/// Lines longer than this (in characters) are reported.
pub(crate) const LONG_LINE: usize = 120;
/// A function-like block longer than this (in lines) is a finding.
pub(crate) const LONG_BLOCK: usize = 50;
/// Nesting deeper than this is a finding.
pub(crate) const DEEP_NESTING: usize = 4;
/// How many TODO markers and long lines are listed (all are counted).
const MAX_LISTED: usize = 20;

/// A line worth pointing at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LineRef {
    /// 1-based line number.
    pub line: usize,
    /// The line, trimmed and cut to 100 characters.
    pub text: String,
}

/// The longest function-like block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Block {
    /// Its name, when one could be read.
    pub name: Option<String>,
    /// 1-based line it starts on.
    pub start_line: usize,
    /// How many lines it spans.
    pub lines: usize,
}

/// What `analyze_code` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CodeReport {
    /// The given language, or the guess (`unknown` when nothing fits).
    pub language: String,
    /// All lines.
    pub lines: usize,
    /// Lines with code on them.
    pub code_lines: usize,
    /// Empty or whitespace-only lines.
    pub blank_lines: usize,
    /// Lines holding only a comment.
    pub comment_lines: usize,
    /// Function-like blocks found.
    pub functions: usize,
    /// The longest of them.
    pub longest_block: Option<Block>,
    /// Deepest nesting (braces, or indentation for indentation languages).
    pub max_nesting: usize,
    /// Lines carrying a TODO or FIXME marker.
    pub todo_count: usize,
    /// The first of those.
    pub todos: Vec<LineRef>,
    /// Lines longer than [`LONG_LINE`] characters.
    pub long_line_count: usize,
    /// The first of those (line numbers).
    pub long_lines: Vec<usize>,
    /// What crosses a threshold, one sentence each, most important first.
    pub findings: Vec<String>,
}

/// Analyses `source`. `language` overrides the guess; `path` lends its
/// extension to the guess.
pub(crate) fn analyze(source: &str, language: Option<&str>, path: Option<&Path>) -> CodeReport {
    let lang = match language.map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => l.to_ascii_lowercase(),
        None => path
            .and_then(language_from_path)
            .map(str::to_string)
            .unwrap_or_else(|| guess_language(source).to_string()),
    };
    let syntax = Syntax::of(&lang);
    let raw: Vec<&str> = source.lines().collect();
    let scanned = scan(&raw, &syntax);

    let blank_lines = scanned.iter().filter(|l| l.blank).count();
    let comment_lines = scanned.iter().filter(|l| l.comment_only).count();
    let markers = Markers::of(&raw);
    let max_nesting = if syntax.braces {
        scanned.iter().map(|l| l.depth_max).max().unwrap_or(0)
    } else {
        indentation_depth(&raw, &scanned)
    };
    let blocks = function_blocks(&raw, &scanned, &syntax);
    let functions = blocks.len();
    // The first of equally long blocks, so the report is deterministic.
    let longest_block = blocks
        .into_iter()
        .fold(None::<Block>, |best, b| match best {
            Some(best) if best.lines >= b.lines => Some(best),
            _ => Some(b),
        });
    let mut report = CodeReport {
        language: lang,
        lines: raw.len(),
        code_lines: raw.len() - blank_lines - comment_lines,
        blank_lines,
        comment_lines,
        functions,
        longest_block,
        max_nesting,
        todo_count: markers.todo_count,
        todos: markers.todos,
        long_line_count: markers.long_line_count,
        long_lines: markers.long_lines,
        findings: Vec::new(),
    };
    report.findings = findings(&report);
    report
}

/// TODO/FIXME markers and over-long lines: all counted, the first
/// [`MAX_LISTED`] listed.
#[derive(Default)]
struct Markers {
    todo_count: usize,
    todos: Vec<LineRef>,
    long_line_count: usize,
    long_lines: Vec<usize>,
}

impl Markers {
    fn of(lines: &[&str]) -> Markers {
        let mut m = Markers::default();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("TODO") || line.contains("FIXME") {
                m.todo_count += 1;
                if m.todos.len() < MAX_LISTED {
                    m.todos.push(LineRef {
                        line: i + 1,
                        text: line.trim().chars().take(100).collect(),
                    });
                }
            }
            if line.chars().count() > LONG_LINE {
                m.long_line_count += 1;
                if m.long_lines.len() < MAX_LISTED {
                    m.long_lines.push(i + 1);
                }
            }
        }
        m
    }
}

/// What in `report` crosses a threshold, one sentence each, most important
/// first.
fn findings(report: &CodeReport) -> Vec<String> {
    let mut findings = Vec::new();
    if let Some(block) = report
        .longest_block
        .as_ref()
        .filter(|b| b.lines > LONG_BLOCK)
    {
        findings.push(format!(
            "{} at line {} is {} lines long (over {LONG_BLOCK}); consider splitting it",
            block
                .name
                .as_ref()
                .map(|n| format!("function `{n}`"))
                .unwrap_or_else(|| "a function".into()),
            block.start_line,
            block.lines
        ));
    }
    let CodeReport {
        max_nesting,
        todo_count,
        long_line_count,
        code_lines,
        comment_lines,
        lines,
        ..
    } = *report;
    if max_nesting > DEEP_NESTING {
        findings.push(format!(
            "nesting reaches depth {max_nesting} (over {DEEP_NESTING}); consider early returns or helpers"
        ));
    }
    if todo_count > 0 {
        findings.push(format!(
            "{todo_count} TODO/FIXME marker(s) left in the code"
        ));
    }
    if long_line_count > 0 {
        findings.push(format!(
            "{long_line_count} line(s) longer than {LONG_LINE} characters"
        ));
    }
    if code_lines > 30 && comment_lines * 20 < code_lines {
        findings.push(format!(
            "few comments: {comment_lines} comment line(s) for {code_lines} lines of code"
        ));
    }
    if lines > 1000 {
        findings.push(format!("large file: {lines} lines; consider splitting it"));
    }
    findings
}

/// The language of a file by its extension.
pub(crate) fn language_from_path(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" | "mts" | "cts" => "typescript",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "swift" => "swift",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "cs" => "csharp",
        "php" => "php",
        "rb" => "ruby",
        "sh" | "bash" | "zsh" => "shell",
        "sql" => "sql",
        "lua" => "lua",
        "toml" => "toml",
        "yaml" | "yml" => "yaml",
        "json" => "json",
        "md" | "markdown" => "markdown",
        "html" | "htm" => "html",
        "css" | "scss" => "css",
        _ => return None,
    })
}

/// A naive guess from keywords: each language scores one point per marker
/// found; the highest wins, ties going to the earlier language in the list.
pub(crate) fn guess_language(source: &str) -> &'static str {
    const MARKERS: &[(&str, &[&str])] = &[
        (
            "rust",
            &[
                "fn ", "let mut ", "impl ", "pub fn ", "use std", "::", "-> ", "match ",
            ],
        ),
        (
            "typescript",
            &[
                ": string",
                ": number",
                "interface ",
                "export type ",
                ": boolean",
                "=> ",
            ],
        ),
        (
            "javascript",
            &[
                "function ",
                "const ",
                "=> ",
                "console.log",
                "require(",
                "let ",
            ],
        ),
        (
            "python",
            &[
                "def ", "import ", "self.", "elif ", "print(", "__init__", "None",
            ],
        ),
        ("go", &["package ", "func ", ":= ", "fmt.", "go "]),
        (
            "java",
            &[
                "public class ",
                "System.out",
                "import java",
                "private ",
                "void ",
            ],
        ),
        ("c", &["#include", "int main", "printf(", "->", "NULL"]),
        ("ruby", &["puts ", "end\n", "def ", "require '", "do |"]),
        ("shell", &["#!/bin/", "echo ", "fi\n", "then\n", "$("]),
    ];
    let mut best = ("unknown", 0);
    for (lang, markers) in MARKERS {
        let score = markers.iter().filter(|m| source.contains(*m)).count();
        if score > best.1 {
            best = (lang, score);
        }
    }
    best.0
}

/// How a language writes comments and blocks.
struct Syntax {
    line_comments: &'static [&'static str],
    block_comments: bool,
    braces: bool,
    /// Function starts: keyword before the name.
    fn_keywords: &'static [&'static str],
}

impl Syntax {
    fn of(lang: &str) -> Syntax {
        const C_FN: &[&str] = &["fn", "function", "func", "fun"];
        match lang {
            "python" => Syntax {
                line_comments: &["#"],
                block_comments: false,
                braces: false,
                fn_keywords: &["def"],
            },
            "ruby" => Syntax {
                line_comments: &["#"],
                block_comments: false,
                braces: false,
                fn_keywords: &["def"],
            },
            "shell" | "yaml" | "toml" => Syntax {
                line_comments: &["#"],
                block_comments: false,
                braces: lang == "shell",
                fn_keywords: &["function"],
            },
            "sql" | "lua" => Syntax {
                line_comments: &["--"],
                block_comments: lang == "sql",
                braces: false,
                fn_keywords: &["function"],
            },
            "unknown" | "markdown" | "json" => Syntax {
                line_comments: &["//", "#"],
                block_comments: true,
                braces: true,
                fn_keywords: &["fn", "function", "func", "def"],
            },
            _ => Syntax {
                line_comments: &["//"],
                block_comments: true,
                braces: true,
                fn_keywords: C_FN,
            },
        }
    }
}

/// One line after stripping strings and comments.
#[derive(Debug, Default, Clone)]
struct Scanned {
    blank: bool,
    comment_only: bool,
    /// Brace depth at the start of the line.
    depth_start: usize,
    /// Deepest brace depth reached on the line.
    depth_max: usize,
    /// Brace depth at the end of the line.
    depth_end: usize,
    /// Whether a `{` opens on this line.
    opens: bool,
}

fn scan(lines: &[&str], syntax: &Syntax) -> Vec<Scanned> {
    let mut out = Vec::with_capacity(lines.len());
    let mut depth: usize = 0;
    let mut in_block = false;
    for line in lines {
        let trimmed = line.trim();
        let mut s = Scanned {
            blank: trimmed.is_empty(),
            depth_start: depth,
            depth_max: depth,
            ..Scanned::default()
        };
        if s.blank {
            s.depth_end = depth;
            out.push(s);
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut code = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if in_block {
                if c == '*' && next == Some('/') {
                    in_block = false;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if syntax.block_comments && c == '/' && next == Some('*') {
                in_block = true;
                i += 2;
                continue;
            }
            let rest: String = chars[i..].iter().take(2).collect();
            if syntax
                .line_comments
                .iter()
                .any(|m| rest.starts_with(m) && (*m != "#" || !is_rust_attribute(&chars, i)))
            {
                break;
            }
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            code = true;
            match c {
                '"' | '`' => i = skip_string(&chars, i, c),
                '\'' => i = skip_char_literal(&chars, i),
                '{' if syntax.braces => {
                    depth += 1;
                    s.opens = true;
                    s.depth_max = s.depth_max.max(depth);
                    i += 1;
                }
                '}' if syntax.braces => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        s.comment_only = !code;
        s.depth_end = depth;
        out.push(s);
    }
    out
}

/// `#[derive(…)]` and `#![…]` are code in Rust, not `#` comments.
fn is_rust_attribute(chars: &[char], i: usize) -> bool {
    matches!(chars.get(i + 1), Some('[') | Some('!'))
}

/// Index just past the string starting at `i` (or the line's end).
fn skip_string(chars: &[char], i: usize, quote: char) -> usize {
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    chars.len()
}

/// Index past a char literal (`'x'`, `'\n'`); a lone `'` (a Rust lifetime,
/// an apostrophe) is skipped by itself.
fn skip_char_literal(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2), chars.get(i + 3)) {
        (Some('\\'), _, _) => {
            let mut j = i + 2;
            while j < chars.len() && j < i + 12 {
                if chars[j] == '\'' {
                    return j + 1;
                }
                j += 1;
            }
            i + 1
        }
        (Some(_), Some('\''), _) => i + 3,
        _ => i + 1,
    }
}

/// Nesting by indentation: the indent unit is the smallest non-zero indent
/// (a tab counts 4), depth is indent / unit.
fn indentation_depth(lines: &[&str], scanned: &[Scanned]) -> usize {
    let indents: Vec<usize> = lines
        .iter()
        .zip(scanned)
        .filter(|(_, s)| !s.blank && !s.comment_only)
        .map(|(l, _)| indent_width(l))
        .collect();
    let unit = indents
        .iter()
        .copied()
        .filter(|w| *w > 0)
        .min()
        .unwrap_or(0);
    if unit == 0 {
        return 0;
    }
    indents.iter().map(|w| w / unit).max().unwrap_or(0)
}

fn indent_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// Function-like blocks: a line whose first words include a function
/// keyword (or, in brace languages, a `name(…) {` header that is not a
/// control statement), spanning to its closing brace or, without braces, to
/// the next line indented no deeper than it.
fn function_blocks(lines: &[&str], scanned: &[Scanned], syntax: &Syntax) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if scanned[i].comment_only || scanned[i].blank {
            continue;
        }
        let Some(name) = function_header(line, syntax) else {
            continue;
        };
        let end = if syntax.braces {
            brace_block_end(scanned, i)
        } else {
            indent_block_end(lines, scanned, i)
        };
        if let Some(end) = end {
            blocks.push(Block {
                name,
                start_line: i + 1,
                lines: end - i + 1,
            });
        }
    }
    blocks
}

/// The function's name (if readable) when `line` starts a function.
fn function_header(line: &str, syntax: &Syntax) -> Option<Option<String>> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == '<' || c == ':' || c == '{')
        .filter(|w| !w.is_empty())
        .collect();
    for (k, word) in words.iter().enumerate().take(6) {
        if syntax.fn_keywords.contains(word) {
            let name = words
                .get(k + 1)
                .filter(|n| {
                    n.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                })
                .map(|n| n.to_string());
            return Some(name);
        }
    }
    if !syntax.braces {
        return None;
    }
    // C-like `type name(args) {` headers, and JS `name = (…) => {`.
    let trimmed = line.trim();
    const CONTROL: &[&str] = &[
        "if", "for", "while", "switch", "catch", "else", "do", "return", "match", "loop",
    ];
    if words.first().is_some_and(|w| CONTROL.contains(w)) {
        return None;
    }
    let header = (trimmed.ends_with('{') || trimmed.ends_with(") {"))
        && trimmed.contains('(')
        && !trimmed.contains(';')
        && !trimmed.starts_with('}');
    if !header {
        return None;
    }
    let before_paren = trimmed.split('(').next().unwrap_or("");
    let name = before_paren
        .split(|c: char| c.is_whitespace() || c == '=' || c == '.')
        .rfind(|w| !w.is_empty())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(str::to_string);
    name.as_ref()?;
    Some(name)
}

/// The last line of the brace block opened on `start` (or on the next line
/// with a `{`, for headers that put it there).
fn brace_block_end(scanned: &[Scanned], start: usize) -> Option<usize> {
    let open_line = (start..scanned.len().min(start + 3)).find(|&j| scanned[j].opens)?;
    let base = scanned[open_line].depth_start;
    (open_line..scanned.len()).find(|&j| scanned[j].depth_end <= base && !scanned[j].blank)
}

/// The last line indented deeper than `start`, before the first non-blank,
/// non-comment line indented no deeper.
fn indent_block_end(lines: &[&str], scanned: &[Scanned], start: usize) -> Option<usize> {
    let base = indent_width(lines[start]);
    let mut last = start;
    for j in start + 1..lines.len() {
        if scanned[j].blank || scanned[j].comment_only {
            continue;
        }
        if indent_width(lines[j]) <= base {
            break;
        }
        last = j;
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_snippet_metrics() {
        let code = "// adds\nfn add(a: i32, b: i32) -> i32 {\n    if a > 0 {\n        // TODO: overflow\n        return a + b;\n    }\n\n    a\n}\n";
        let r = analyze(code, None, None);
        assert_eq!(r.language, "rust");
        assert_eq!(r.lines, 9);
        assert_eq!(r.blank_lines, 1);
        assert_eq!(r.comment_lines, 2);
        assert_eq!(r.code_lines, 6);
        assert_eq!(r.max_nesting, 2);
        assert_eq!(r.todo_count, 1);
        assert_eq!(r.functions, 1);
        let b = r.longest_block.unwrap();
        assert_eq!(b.name.as_deref(), Some("add"));
        assert_eq!((b.start_line, b.lines), (2, 8));
    }

    #[test]
    fn braces_in_strings_and_chars_do_not_nest() {
        let code = "fn f<'a>(s: &'a str) {\n    let x = \"{{{\";\n    let c = '{';\n}\n";
        let r = analyze(code, Some("rust"), None);
        assert_eq!(r.max_nesting, 1);
        assert_eq!(r.longest_block.unwrap().lines, 4);
    }

    #[test]
    fn python_uses_indentation() {
        let code = "import os\n\ndef walk(p):\n    for x in p:\n        if x:\n            print(x)\n    return None\n\nprint(1)\n";
        let r = analyze(code, None, None);
        assert_eq!(r.language, "python");
        assert_eq!(r.max_nesting, 3);
        let b = r.longest_block.unwrap();
        assert_eq!(b.name.as_deref(), Some("walk"));
        assert_eq!((b.start_line, b.lines), (3, 5));
    }

    #[test]
    fn findings_name_what_crosses_a_threshold() {
        let mut code = String::from("function big() {\n");
        for i in 0..60 {
            code.push_str(&format!("  x{i} = {i};\n"));
        }
        code.push_str(&format!("  y = \"{}\";\n}}\n", "z".repeat(130)));
        let r = analyze(&code, None, Some(Path::new("a.js")));
        assert_eq!(r.language, "javascript");
        assert_eq!(r.long_line_count, 1);
        assert!(r
            .findings
            .iter()
            .any(|f| f.contains("`big`") && f.contains("63 lines")));
        assert!(r.findings.iter().any(|f| f.contains("longer than 120")));
        assert!(r.findings.iter().any(|f| f.contains("few comments")));
    }

    #[test]
    fn the_guess_is_deterministic_and_falls_back_to_unknown() {
        assert_eq!(guess_language("hello world"), "unknown");
        assert_eq!(
            guess_language("package main\nfunc main() { fmt.Println(1) }"),
            "go"
        );
        assert_eq!(language_from_path(Path::new("x/y.TSX")), Some("typescript"));
    }
    #[test]
    fn block_comments_and_attributes_are_told_apart() {
        let code = "/* a\n   b */\n#[derive(Debug)]\nstruct S; // trailing\n# not rust\n";
        let r = analyze(code, Some("rust"), None);
        assert_eq!(r.lines, 5);
        // The block comment's two lines; `#` is no comment in Rust (`//` is).
        assert_eq!(r.comment_lines, 2);
        assert_eq!(r.code_lines, 3);
        let py = analyze("# comment\nx = 1  # trailing\n", Some("python"), None);
        assert_eq!((py.comment_lines, py.code_lines), (1, 1));
    }

    #[test]
    fn escaped_quotes_and_comment_markers_in_strings_do_not_end_the_code() {
        let code = "fn f() {\n    let s = \"a \\\" { // not a comment\";\n    if x {\n    }\n}\n";
        let r = analyze(code, Some("rust"), None);
        assert_eq!(r.comment_lines, 0);
        assert_eq!(r.max_nesting, 2);
        assert_eq!(r.longest_block.unwrap().lines, 5);
    }

    #[test]
    fn markers_and_long_lines_are_counted_all_and_listed_up_to_the_cap() {
        let mut code = String::new();
        for i in 0..25 {
            code.push_str(&format!(
                "// TODO {i}\nlet x{i} = \"{}\";\n",
                "y".repeat(130)
            ));
        }
        let r = analyze(&code, Some("javascript"), None);
        assert_eq!((r.todo_count, r.todos.len()), (25, MAX_LISTED));
        assert_eq!((r.long_line_count, r.long_lines.len()), (25, MAX_LISTED));
        assert_eq!(
            r.todos[1],
            LineRef {
                line: 3,
                text: "// TODO 1".into()
            }
        );
        assert_eq!(r.long_lines[0], 2);
    }
}
