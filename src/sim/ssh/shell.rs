//! The command line of an exec request as a POSIX shell would split it into words: single
//! quotes, double quotes (with `\` escaping `"`, `\`, `$`, `` ` `` and newline), backslash
//! escapes outside quotes, and one trailing `> PATH` redirect of stdout. Anything else a shell
//! would interpret — `;`, `&`, `|`, `<`, `(`, `)`, backticks, `$(`, `$VAR`, a comment, a raw
//! newline, other redirects — is refused (the simulator runs no shell), naming the operator.
//! Also strips coreutils' `timeout [-k N] [-s SIG] DURATION` wrapper our client adds.

/// A line split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub argv: Vec<String>,
    /// `> PATH`: where stdout goes.
    pub redirect: Option<String>,
}

struct Splitter {
    words: Vec<String>,
    cur: String,
    in_word: bool,
    redirect_next: bool,
    redirect: Option<String>,
}

impl Splitter {
    fn end_word(&mut self) {
        if !self.in_word {
            return;
        }
        let w = std::mem::take(&mut self.cur);
        self.in_word = false;
        if self.redirect_next {
            self.redirect = Some(w);
            self.redirect_next = false;
        } else {
            self.words.push(w);
        }
    }
}

/// A `$` expansion starting at `rest` (after the `$`), as the operator text to report.
fn expansion(rest: &[char]) -> Option<String> {
    let first = *rest.first()?;
    if first == '(' {
        return Some("$(".into());
    }
    if first == '{' || first == '\'' || first == '"' {
        return Some(format!("${first}"));
    }
    if first.is_ascii_alphabetic() || first == '_' {
        let name: String = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        return Some(format!("${name}"));
    }
    "@*#?$!-0123456789"
        .contains(first)
        .then(|| format!("${first}"))
}

/// Splits `line` into words; `Err(op)` names the first shell operator found.
pub fn parse(line: &str) -> Result<Parsed, String> {
    let c: Vec<char> = line.chars().collect();
    let mut s = Splitter {
        words: Vec::new(),
        cur: String::new(),
        in_word: false,
        redirect_next: false,
        redirect: None,
    };
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            ' ' | '\t' => s.end_word(),
            '\n' => return Err("\\n".into()),
            '\'' => {
                let end = c[i + 1..].iter().position(|x| *x == '\'').ok_or("'")?;
                s.cur.extend(&c[i + 1..i + 1 + end]);
                s.in_word = true;
                i += end + 1;
            }
            '"' => {
                i = double_quoted(&c, i + 1, &mut s.cur)?;
                s.in_word = true;
            }
            '\\' => {
                match c.get(i + 1) {
                    Some('\n') => {}
                    Some(x) => {
                        s.cur.push(*x);
                        s.in_word = true;
                    }
                    None => {
                        s.cur.push('\\');
                        s.in_word = true;
                    }
                }
                i += 1;
            }
            '>' => {
                if s.in_word && s.cur.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{}>", s.cur));
                }
                if let Some(n @ ('>' | '&' | '|')) = c.get(i + 1) {
                    return Err(format!(">{n}"));
                }
                s.end_word();
                if s.redirect_next || s.redirect.is_some() {
                    return Err(">".into());
                }
                s.redirect_next = true;
            }
            op @ (';' | '&' | '|') => {
                let double = c.get(i + 1) == Some(&op);
                return Err(if double {
                    format!("{op}{op}")
                } else {
                    op.to_string()
                });
            }
            op @ ('<' | '(' | ')' | '`') => return Err(op.to_string()),
            '$' => match expansion(&c[i + 1..]) {
                Some(op) => return Err(op),
                None => {
                    s.cur.push('$');
                    s.in_word = true;
                }
            },
            '#' if !s.in_word => return Err("#".into()),
            x => {
                s.cur.push(x);
                s.in_word = true;
            }
        }
        i += 1;
    }
    s.end_word();
    if s.redirect_next {
        return Err(">".into());
    }
    Ok(Parsed {
        argv: s.words,
        redirect: s.redirect,
    })
}

/// Reads a double-quoted string from `i` (after the `"`); returns the index of the closing `"`.
fn double_quoted(c: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    while i < c.len() {
        match c[i] {
            '"' => return Ok(i),
            '\\' => match c.get(i + 1) {
                Some('\n') => i += 1,
                Some(x @ ('"' | '\\' | '$' | '`')) => {
                    out.push(*x);
                    i += 1;
                }
                _ => out.push('\\'),
            },
            '`' => return Err("`".into()),
            '$' => match expansion(&c[i + 1..]) {
                Some(op) if !op.ends_with('\'') && !op.ends_with('"') => return Err(op),
                _ => out.push('$'),
            },
            x => out.push(x),
        }
        i += 1;
    }
    Err("\"".into())
}

/// Whether `d` is a `timeout` DURATION (`600`, `0.5`, `10s`, `2m`).
fn is_duration(d: &str) -> bool {
    let num = d.strip_suffix(['s', 'm', 'h', 'd']).unwrap_or(d);
    !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.bytes().filter(|b| *b == b'.').count() <= 1
        && num != "."
}

/// Strips a leading `timeout [OPTION]... DURATION` wrapper. `Ok((argv, wrapped))`, or
/// `Err(stderr)` for what coreutils `timeout` itself rejects (exit 125).
pub fn strip_timeout(argv: Vec<String>) -> Result<(Vec<String>, bool), String> {
    if argv.first().map(String::as_str) != Some("timeout") {
        return Ok((argv, false));
    }
    let help = "Try 'timeout --help' for more information.\n";
    let mut i = 1;
    while let Some(a) = argv.get(i) {
        match a.as_str() {
            "-k" | "-s" | "--kill-after" | "--signal" => i += 2,
            "--preserve-status" | "--foreground" | "-v" | "--verbose" => i += 1,
            "--" => {
                i += 1;
                break;
            }
            o if o.starts_with("--kill-after=") || o.starts_with("--signal=") => i += 1,
            o if (o.starts_with("-k") || o.starts_with("-s")) && o.len() > 2 => i += 1,
            o if o.starts_with('-') && o.len() > 1 => {
                return Err(format!("timeout: invalid option -- '{}'\n{help}", &o[1..]));
            }
            _ => break,
        }
    }
    let Some(d) = argv.get(i) else {
        return Err(format!("timeout: missing operand\n{help}"));
    };
    if !is_duration(d) {
        return Err(format!("timeout: invalid time interval ‘{d}’\n{help}"));
    }
    let rest: Vec<String> = argv[i + 1..].to_vec();
    if rest.is_empty() {
        return Err(format!("timeout: missing operand\n{help}"));
    }
    Ok((rest, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        parse(line).expect("parses").argv
    }

    #[test]
    fn quoting_follows_posix_word_splitting() {
        assert_eq!(
            words("qm set 101 --name 'a;b'"),
            ["qm", "set", "101", "--name", "a;b"]
        );
        assert_eq!(words(r"echo 'it'\''s'"), ["echo", "it's"]);
        assert_eq!(words(r#"echo "a\"b\$c\d" ''"#), ["echo", r#"a"b$c\d"#, ""]);
        assert_eq!(words(r"echo a\ b \$x"), ["echo", "a b", "$x"]);
        assert_eq!(words("echo cost$ 5"), ["echo", "cost$", "5"]);
        let p = parse("pvesm path local:x > '/tmp/o u t'").expect("redirect");
        assert_eq!(p.redirect.as_deref(), Some("/tmp/o u t"));
        assert_eq!(p.argv, ["pvesm", "path", "local:x"]);
        assert_eq!(
            parse("cat >/tmp/x").expect("x").redirect.as_deref(),
            Some("/tmp/x")
        );
    }

    #[test]
    fn operators_are_refused() {
        for (line, op) in [
            ("a;b", ";"),
            ("a && b", "&&"),
            ("a | b", "|"),
            ("a < b", "<"),
            ("echo `id`", "`"),
            ("echo $(id)", "$("),
            ("echo $HOME", "$HOME"),
            ("echo \"$HOME\"", "$HOME"),
            ("a\nb", "\\n"),
            ("(a)", "("),
            ("a >> b", ">>"),
            ("a 2> b", "2>"),
            ("a > b > c", ">"),
            ("a >", ">"),
            ("echo 'x", "'"),
            ("a # c", "#"),
        ] {
            assert_eq!(parse(line), Err(op.to_string()), "{line}");
        }
    }

    #[test]
    fn timeout_wrapper_is_stripped() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            strip_timeout(argv(&["timeout", "-k", "2", "0.5", "qm", "list"])),
            Ok((argv(&["qm", "list"]), true))
        );
        assert_eq!(
            strip_timeout(argv(&["timeout", "600", "ls"])),
            Ok((argv(&["ls"]), true))
        );
        assert_eq!(strip_timeout(argv(&["ls"])), Ok((argv(&["ls"]), false)));
        assert!(strip_timeout(argv(&["timeout", "x", "ls"])).is_err());
        assert!(strip_timeout(argv(&["timeout", "5"])).is_err());
    }
}
