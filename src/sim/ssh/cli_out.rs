//! PVE's CLI output: `--output-format json|json-pretty|text` and the box tables of `text`.

use serde_json::Value;

use super::super::http::ApiError;
use super::cmd_qm::api_error;
use super::exec::{Io, Opts};

fn opt<'a>(opts: &'a Opts, k: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(x, _)| x == k)
        .map(|(_, v)| v.as_str())
}

/// Prints `value` in `--output-format` (`text` falls back to `text()`).
pub fn emit(io: &mut Io, opts: &Opts, value: &Value, text: impl FnOnce() -> String) -> u32 {
    match opt(opts, "output-format").unwrap_or("text") {
        "json" => io.out(&format!("{value}\n")),
        "json-pretty" => io.out(&format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        )),
        "text" => io.out(&text()),
        other => {
            let m = format!(
                "value '{other}' does not have a value in the enumeration 'text, json, json-pretty, yaml'"
            );
            return api_error(io, ApiError::param("output-format", m), "");
        }
    }
    0
}

/// PVE's text output: a box table with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |l: &str, m: &str, r: &str, f: &str| {
        let parts: Vec<String> = widths.iter().map(|w| f.repeat(w + 2)).collect();
        format!("{l}{}{r}\n", parts.join(m))
    };
    let row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c}{} ", " ".repeat(w - c.chars().count())))
            .collect();
        format!("│{}│\n", parts.join("│"))
    };
    let mut s = line("┌", "┬", "┐", "─");
    s.push_str(&row(headers.iter().map(|h| h.to_string()).collect()));
    s.push_str(&line("╞", "╪", "╡", "═"));
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push_str(&line("├", "┼", "┤", "─"));
        }
        s.push_str(&row(r.clone()));
    }
    s.push_str(&line("└", "┴", "┘", "─"));
    s
}
