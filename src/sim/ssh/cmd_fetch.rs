//! `wget` and `curl` on a node: plain HTTP from loopback only, through the download code the
//! API's `download-url` uses (same size cap). Other hosts fail as name resolution would, so the
//! simulator never reaches the network. Like the real tools, `wget -O FILE` creates (empties)
//! FILE before connecting and leaves it empty on failure; `curl -o FILE` creates nothing unless
//! the transfer succeeds. Not modelled: redirects, retries, HTTPS, the body of an error answer
//! (`curl` without `-f` writes an empty file for a 404), progress bars beyond a summary.

use super::super::state::now;
use super::exec::{Io, NodeCtx};
use super::fs::{self, Writer};
use crate::sim::api::storage::download::{FetchError, MAX_BYTES, fetch_url};

/// `YYYY-MM-DD HH:MM:SS` (UTC) of now, as wget stamps its lines.
fn stamp() -> String {
    let t = now();
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// wget's short size: `196K`, `1.2M`.
fn short_size(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["", "K", "M", "G", "T"] {
        if v < 1024.0 || unit == "T" {
            return match unit {
                "" => n.to_string(),
                _ if v < 10.0 => format!("{v:.1}{unit}"),
                _ => format!("{v:.0}{unit}"),
            };
        }
        v /= 1024.0;
    }
    n.to_string()
}

/// `host:port` of a URL, for the tools' messages.
fn host_port(url: &str) -> (String, u16) {
    reqwest::Url::parse(url)
        .ok()
        .map(|u| {
            (
                u.host_str().unwrap_or("").to_string(),
                u.port_or_known_default().unwrap_or(80),
            )
        })
        .unwrap_or_default()
}

/// The file name a URL saves to without `-O`/`-o` (`index.html` for `/`).
fn remote_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after = path.split_once("://").map_or(path, |(_, r)| r);
    match after
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(""))
    {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "index.html".to_string(),
    }
}

/// Fetches into a [`Writer`] (and, for stdout, a full copy).
async fn get(url: &str, keep_all: bool) -> Result<(Writer, Vec<u8>), FetchError> {
    let mut w = Writer::default();
    let mut all = Vec::new();
    let mut sink = |chunk: &[u8]| {
        w.push(chunk);
        if keep_all {
            all.extend_from_slice(chunk);
        }
    };
    fetch_url(url, &mut sink).await?;
    Ok((w, all))
}

fn save(ctx: &NodeCtx, path: &str, w: Writer) -> Result<(), fs::FsError> {
    let mut st = ctx.lock();
    fs::write(&mut st, &ctx.node, path, w.finish())
}

const WGET_USAGE: &str =
    "Usage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n";

/// `wget [-q] [-O FILE] URL`.
pub async fn wget(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let (mut quiet, mut output, mut urls) = (false, None::<String>, Vec::new());
    // `-nv`: no progress, but errors and a one-line summary, as wget prints them.
    let mut terse = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            // getopt_long: everything after `--` is an operand.
            "--" => {
                urls.extend(it.by_ref().cloned());
                break;
            }
            "-q" | "--quiet" => quiet = true,
            "-nv" | "--no-verbose" => terse = true,
            "-O" => output = it.next().cloned(),
            "-t" | "-T" | "--tries" | "--timeout" => {
                it.next();
            }
            o if o.starts_with("--output-document=") => {
                output = o.split_once('=').map(|x| x.1.to_string());
            }
            o if o.starts_with("-O") => output = Some(o[2..].to_string()),
            o if o.starts_with("--progress=")
                || o.starts_with("--tries=")
                || o.starts_with("--timeout=")
                || o == "--no-check-certificate"
                || o == "-c"
                || o == "--continue" => {}
            o if o.starts_with("--") => {
                io.err(&format!("wget: unrecognized option '{o}'\n{WGET_USAGE}"));
                return 2;
            }
            o if o.starts_with('-') && o.len() > 1 => {
                io.err(&format!(
                    "wget: invalid option -- '{}'\n{WGET_USAGE}",
                    &o[1..2]
                ));
                return 2;
            }
            u => urls.push(u.to_string()),
        }
    }
    let Some(url) = urls.first().cloned() else {
        io.err(&format!("wget: missing URL\n{WGET_USAGE}"));
        return 1;
    };
    let dest = output.unwrap_or_else(|| remote_name(&url));
    let to_stdout = dest == "-";
    if !to_stdout {
        let mut st = ctx.lock();
        if let Err(e) = fs::write(&mut st, &ctx.node, &dest, fs::Blob::from_bytes(b"")) {
            io.err(&format!("{dest}: {e}\n"));
            return 3;
        }
    }
    let say = |io: &mut Io, s: &str| {
        if !quiet && !terse {
            io.err(s);
        }
    };
    say(io, &format!("--{}--  {url}\n", stamp()));
    let (host, port) = host_port(&url);
    let (status, msg) = match get(&url, to_stdout).await {
        Ok((w, all)) => {
            let size = w.size();
            say(
                io,
                &format!(
                    "Connecting to {host}:{port}... connected.\nHTTP request sent, awaiting response... 200 OK\nLength: {size} ({}) [application/octet-stream]\n",
                    short_size(size)
                ),
            );
            if to_stdout {
                io.out_bytes(&all);
            } else if let Err(e) = save(ctx, &dest, w) {
                io.err(&format!("{dest}: {e}\n"));
                return 3;
            }
            let saved = format!(
                "Saving to: ‘{dest}’\n\n{} - ‘{dest}’ saved [{size}/{size}]\n\n",
                stamp()
            );
            (0, saved)
        }
        Err(FetchError::NotLoopback(h)) => (
            4,
            format!(
                "Resolving {h} ({h})... failed: Name or service not known.\nwget: unable to resolve host address ‘{h}’\n"
            ),
        ),
        Err(FetchError::Connect(hp, why)) => (4, format!("Connecting to {hp}... failed: {why}.\n")),
        Err(FetchError::Status(code, why)) => (
            8,
            format!(
                "Connecting to {host}:{port}... connected.\nHTTP request sent, awaiting response... {code} {why}\n{} ERROR {code}: {why}.\n\n",
                stamp()
            ),
        ),
        Err(FetchError::Read(e)) => (4, format!("Read error ({e}).\n")),
        Err(FetchError::BadUrl(_)) => (1, format!("{url}: Unsupported scheme.\n")),
        Err(FetchError::NotHttp(scheme)) => (
            1,
            format!("sim: wget fetches plain http:// URLs from loopback only, not {scheme}://\n"),
        ),
        Err(FetchError::Client(e)) => (1, format!("sim: http client: {e}\n")),
        Err(FetchError::TooBig) => (
            3,
            format!(
                "sim: the simulator downloads at most {} MiB\n",
                MAX_BYTES >> 20
            ),
        ),
    };
    say(io, &msg);
    if terse && !quiet {
        io.err(&terse_line(&url, &dest, status, &msg));
    }
    status
}

/// What `wget -nv` prints: the summary line on success, the error lines otherwise.
fn terse_line(url: &str, dest: &str, status: u32, verbose: &str) -> String {
    if status == 0 {
        return format!("{} URL:{url} -> \"{dest}\" [1]\n", stamp());
    }
    let errors: Vec<&str> = verbose
        .lines()
        .filter(|l| l.contains("ERROR") || l.starts_with("wget:") || l.contains("failed"))
        .collect();
    if errors.iter().any(|l| l.contains("ERROR")) {
        format!("{url}:\n{}\n", errors.join("\n"))
    } else {
        format!("{}\n", errors.join("\n"))
    }
}

const CURL_HELP: &str = "curl: try 'curl --help' or 'curl --manual' for more information\n";

struct CurlOpts {
    fail: bool,
    silent: bool,
    show_error: bool,
    output: Option<String>,
    remote_name: bool,
    url: Option<String>,
}

fn curl_opts(args: &[String]) -> Result<CurlOpts, String> {
    let mut o = CurlOpts {
        fail: false,
        silent: false,
        show_error: false,
        output: None,
        remote_name: false,
        url: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => {
                if let Some(u) = it.next() {
                    o.url = Some(u.clone());
                }
                break;
            }
            "--fail" => o.fail = true,
            "--silent" => o.silent = true,
            "--show-error" => o.show_error = true,
            "--location" | "--insecure" | "--progress-bar" => {}
            "--remote-name" => o.remote_name = true,
            "--output" => o.output = it.next().cloned(),
            "--retry" | "--connect-timeout" | "--max-time" | "-m" => {
                it.next();
            }
            s if s.starts_with("--") => return Err(format!("curl: option {s}: is unknown\n")),
            s if s.starts_with('-') && s.len() > 1 => {
                for (i, c) in s[1..].char_indices() {
                    match c {
                        'f' => o.fail = true,
                        's' => o.silent = true,
                        'S' => o.show_error = true,
                        'L' | 'k' | '#' => {}
                        'O' => o.remote_name = true,
                        'o' => {
                            let rest = &s[2 + i..];
                            o.output = if rest.is_empty() {
                                it.next().cloned()
                            } else {
                                Some(rest.to_string())
                            };
                            break;
                        }
                        _ => return Err(format!("curl: option {s}: is unknown\n")),
                    }
                }
            }
            u => o.url = Some(u.to_string()),
        }
    }
    Ok(o)
}

/// `curl [-fsSL] [-o FILE | -O] URL`.
pub async fn curl(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let o = match curl_opts(args) {
        Ok(o) => o,
        Err(e) => {
            io.err(&format!("{e}{CURL_HELP}"));
            return 2;
        }
    };
    let Some(url) = o.url.clone() else {
        io.err(&format!("curl: no URL specified\n{CURL_HELP}"));
        return 2;
    };
    let dest = o
        .output
        .clone()
        .or_else(|| o.remote_name.then(|| remote_name(&url)))
        .filter(|d| d != "-");
    let (host, port) = host_port(&url);
    let (code, msg) = match get(&url, dest.is_none()).await {
        Ok((w, all)) => {
            let Some(path) = &dest else {
                io.out_bytes(&all);
                return 0;
            };
            if !o.silent {
                let n = w.size();
                io.err(&format!("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n100 {n:>5}  100 {n:>5}    0     0   {n:>5}      0 --:--:-- --:--:-- --:--:-- {n:>5}\n"));
            }
            return match save(ctx, path, w) {
                Ok(()) => 0,
                Err(e) => {
                    io.err(&format!("curl: (23) Failure writing output to destination, passed 0 returned 0 ({path}: {e})\n"));
                    23
                }
            };
        }
        Err(FetchError::Status(status, _)) if !o.fail => {
            if let Some(path) = &dest {
                let _ = save(ctx, path, Writer::default());
            }
            let _ = status;
            return 0;
        }
        Err(FetchError::Status(status, _)) => {
            (22, format!("The requested URL returned error: {status}"))
        }
        Err(FetchError::NotLoopback(h)) => (6, format!("Could not resolve host: {h}")),
        Err(FetchError::Connect(..)) => (
            7,
            format!(
                "Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server"
            ),
        ),
        Err(FetchError::Read(_)) => (56, "Failure when receiving data from the peer".into()),
        Err(FetchError::BadUrl(_)) => (3, "URL rejected: Malformed input to a URL function".into()),
        Err(FetchError::TooBig) => (63, "Maximum file size exceeded".into()),
        Err(FetchError::NotHttp(scheme)) => {
            io.err(&format!(
                "sim: curl fetches plain http:// URLs from loopback only, not {scheme}://\n"
            ));
            return 1;
        }
        Err(FetchError::Client(e)) => {
            io.err(&format!("sim: http client: {e}\n"));
            return 1;
        }
    };
    if !o.silent || o.show_error {
        io.err(&format!("curl: ({code}) {msg}\n"));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes() {
        assert_eq!(remote_name("http://h:1/a/noble.qcow2?x=1"), "noble.qcow2");
        assert_eq!(remote_name("http://h:1/"), "index.html");
        assert_eq!(remote_name("http://h"), "index.html");
        assert_eq!(short_size(200_704), "196K");
        assert_eq!(short_size(1_258_291), "1.2M");
        assert_eq!(stamp().len(), 19);
    }

    #[test]
    fn curl_flags_combine() {
        let a: Vec<String> = ["-fsSLo", "/tmp/x", "http://127.0.0.1/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = curl_opts(&a).expect("parses");
        assert!(o.fail && o.silent && o.show_error);
        assert_eq!(o.output.as_deref(), Some("/tmp/x"));
        assert_eq!(o.url.as_deref(), Some("http://127.0.0.1/x"));
    }
}
