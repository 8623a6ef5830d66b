//! Shell quoting. SSH has no argv: the server hands one string to the user's shell. Every
//! command line we send is built by [`Command::to_shell_line`], which quotes every piece with
//! [`quote`]; nothing else in the crate concatenates user input into a command line.

use std::fmt;

/// Quote one argument for a POSIX shell so that it reaches the program as exactly one word,
/// byte for byte, with no expansion of any kind.
///
/// Words made only of characters with no meaning to the shell stay bare (`qm`, `local-lvm`,
/// `/var/lib/vz`); anything else is wrapped in single quotes, inside which the shell
/// interprets nothing, and each `'` becomes `'\''` (close, escaped quote, reopen).
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.bytes().all(is_safe) {
        return arg.to_owned();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Bytes that are never special to a POSIX shell in any position of a word. `=` and `~` are
/// left out on purpose (assignment words, tilde expansion at the start).
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'/' | b',' | b':' | b'@' | b'+' | b'%'
        )
}

/// A remote command: a program and its arguments, each quoted when the line is built.
///
/// ```
/// use proxmox_manager::ssh::Command;
/// let c = Command::new("qm").arg("set").arg("101").arg("--name").arg("a;b");
/// assert_eq!(c.to_shell_line(), "qm set 101 --name 'a;b'");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    program: String,
    args: Vec<String>,
    stdout_to: Option<String>,
}

impl Command {
    /// A command running `program` (looked up in the remote `PATH`).
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            stdout_to: None,
        }
    }

    /// Append one argument; it reaches the program as one word, whatever it contains.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Append several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Redirect the program's standard output to a remote file (`> 'path'`, quoted like any
    /// argument).
    pub fn stdout_to(mut self, path: impl Into<String>) -> Self {
        self.stdout_to = Some(path.into());
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments, unquoted.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// What errors and logs show: the program and its first argument if that looks like a
    /// subcommand (`qm disk`), never values that could be secrets.
    pub fn summary(&self) -> String {
        match self.args.first() {
            Some(a) if a.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') && !a.is_empty() => {
                format!("{} {a}", self.program)
            }
            _ => self.program.clone(),
        }
    }

    /// This command run by `wrapper` (e.g. `timeout 30`): the wrapper's words, then ours; the
    /// redirect stays on the outside.
    pub(crate) fn run_under(&self, wrapper: Command) -> Command {
        Command {
            program: wrapper.program,
            args: wrapper
                .args
                .into_iter()
                .chain(std::iter::once(self.program.clone()))
                .chain(self.args.iter().cloned())
                .collect(),
            stdout_to: self.stdout_to.clone(),
        }
    }

    /// The line sent to the remote shell: every piece quoted with [`quote`].
    pub fn to_shell_line(&self) -> String {
        let mut line = quote(&self.program);
        for a in &self.args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        if let Some(path) = &self.stdout_to {
            line.push_str(" > ");
            line.push_str(&quote(path));
        }
        line
    }
}

/// Only the summary: arguments may hold secrets, and Debug output ends up in logs.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("summary", &self.summary())
            .field("args", &self.args.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "",
        "plain",
        "a b",
        "a;touch /tmp/x",
        "$(id)",
        "`id`",
        "${HOME}",
        "'",
        "it's",
        "\"quoted\"",
        "'\\''",
        "line1\nline2",
        "*",
        "?[a]",
        "~root",
        "a=b",
        "-n",
        "back\\slash",
        "tab\there",
        "ünïcødé ✓",
        "&& || | > < >> 2>&1",
        "#comment",
        "!event",
        "https://example.com/a?b=c&d=$(id)#frag",
    ];

    /// Run the quoted form through the real /bin/sh and check it prints the input exactly.
    #[test]
    fn quoted_words_survive_the_real_shell_verbatim() {
        for input in HOSTILE {
            let script = format!("printf %s {}", quote(input));
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("run /bin/sh");
            assert!(out.status.success(), "sh failed for {input:?}: {script}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                *input,
                "script: {script}"
            );
        }
    }

    #[test]
    fn whole_command_lines_keep_every_argument_one_word() {
        let cmd = Command::new("printf")
            .arg("%s\\n")
            .args(HOSTILE.iter().copied());
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd.to_shell_line())
            .output()
            .expect("run /bin/sh");
        let expected: String = HOSTILE.iter().map(|s| format!("{s}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    #[test]
    fn safe_words_stay_bare_and_others_are_quoted() {
        assert_eq!(quote("local-lvm"), "local-lvm");
        assert_eq!(quote("/var/lib/vz/a.qcow2"), "/var/lib/vz/a.qcow2");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn redirect_target_is_quoted_and_debug_hides_arguments() {
        let c = Command::new("cat").stdout_to("/tmp/a b;c");
        assert_eq!(c.to_shell_line(), "cat > '/tmp/a b;c'");
        let c = Command::new("pvesh")
            .arg("set")
            .arg("--password")
            .arg("hunter2");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert_eq!(c.summary(), "pvesh set");
    }

    #[test]
    fn wrapping_keeps_the_redirect_outside() {
        let c = Command::new("cat").arg("a b").stdout_to("/tmp/o");
        let w = c.run_under(Command::new("timeout").arg("5"));
        assert_eq!(w.to_shell_line(), "timeout 5 cat 'a b' > /tmp/o");
    }
}
