//! The audit log: one JSON line per call through the gateway, under the state directory, rotated
//! by size, readable and followable with `mcpctl calls`.
//!
//! A call writes its record's line into a buffer it shares with a writer thread and does not wait
//! for the disk; a log that cannot keep up loses records (counted in the daemon's log) rather
//! than slowing calls. The newest records also go to everyone following the log.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use mcp_gateway_proto::CallRecord;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::gateway::GatewayError;
use crate::jsonrpc::{self, Reply};
use crate::upstream::UpstreamError;

/// The file is rotated (to `audit.jsonl.1`, replacing the previous one) past this size.
const MAX_BYTES: u64 = 8 << 20;

/// How long the writer lets records gather after a write before it looks again. While it sleeps a
/// call's record is an append to the shared buffer that wakes no thread, so a busy gateway pays
/// one wake-up and one write per interval instead of per call; the file lags by at most this
/// much, and followers (`mcpctl calls -f`) get records straight from the call, not from the file.
const GATHER: Duration = Duration::from_millis(10);

/// Record lines that may wait for the writer; past this the log is not keeping up and records
/// are lost instead of holding memory.
const MAX_PENDING: usize = 4 << 20;

/// The most a drained buffer keeps of what it grew to; a busy gateway's interval of records is
/// a few dozen KiB.
const KEPT_BUFFER: usize = 256 << 10;

pub struct Audit {
    path: PathBuf,
    shared: Arc<Shared>,
    feed: broadcast::Sender<CallRecord>,
}

/// What calls and the writer share: the lines not yet written, and the signal that wakes a
/// writer waiting for the first of them.
#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

#[derive(Default)]
struct Pending {
    /// Whole lines, each with its newline.
    lines: Vec<u8>,
    /// Whether the writer waits on `arrived`: only then does a record wake it.
    waiting: bool,
    /// Set when the log is dropped: the writer writes what is left and ends.
    closed: bool,
    clock: Clock,
}

impl Audit {
    /// Opens the log at `dir/audit.jsonl` and starts its writer.
    pub fn start(dir: &Path) -> Audit {
        let path = dir.join("audit.jsonl");
        let shared = Arc::new(Shared::default());
        let (feed, _) = broadcast::channel(256);
        let (file, writer) = (path.clone(), Arc::clone(&shared));
        let spawned = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_records(&file, &writer));
        if let Err(err) = spawned {
            tracing::error!("no audit log: cannot start its writer: {err}");
        }
        Audit { path, shared, feed }
    }

    /// Logs a finished call, stamped with the time now. The line is written here, from what the
    /// call holds, rather than on the writer thread from a record of owned copies: a call then
    /// allocates nothing for its record, and no thread frees what another allocated (glibc's
    /// slow path, which cost more than writing the line).
    pub fn record(&self, call: Call<'_>, trail: &Trail, outcome: &Result<Reply, GatewayError>) {
        let summary = Summary::of(outcome, &trail.secrets);
        let now = SystemTime::now();
        let mut pending = self.shared.lock();
        if pending.lines.len() > MAX_PENDING {
            drop(pending);
            tracing::warn!("an audit record was lost: the log is not keeping up");
            return;
        }
        let Pending {
            lines,
            waiting,
            clock,
            ..
        } = &mut *pending;
        let line = Line {
            time: clock.stamp(now),
            profile: call.profile,
            client: call.client,
            server: &trail.server,
            method: call.method,
            name: &trail.name,
            duration_ms: call.took.as_secs_f64() * 1000.0,
            outcome: summary.outcome,
            error: summary.error.as_deref(),
            request_bytes: call.request_bytes,
            response_bytes: summary.response_bytes,
            secrets: &summary.secrets,
            arguments: trail.arguments.as_ref(),
        };
        let start = lines.len();
        // A line of strings, numbers and a `Value` always serialises.
        if line.write(lines).is_err() {
            lines.truncate(start);
            return;
        }
        lines.push(b'\n');
        if self.feed.receiver_count() > 0
            && let Ok(record) = serde_json::from_slice::<CallRecord>(&lines[start..])
        {
            let _ = self.feed.send(record);
        }
        let wake = std::mem::take(waiting);
        drop(pending);
        if wake {
            self.shared.arrived.notify_one();
        }
    }

    /// Records from now on, for `mcpctl calls -f`.
    pub fn follow(&self) -> broadcast::Receiver<CallRecord> {
        self.feed.subscribe()
    }

    /// The last `limit` records that `wanted` keeps, oldest first, from the rotated file and the
    /// current one.
    pub fn last(&self, limit: usize, wanted: impl Fn(&CallRecord) -> bool) -> Vec<CallRecord> {
        let mut records = Vec::new();
        for path in [rotated(&self.path), self.path.clone()] {
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            records.extend(
                std::io::BufReader::new(file)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|line| serde_json::from_str::<CallRecord>(&line).ok())
                    .filter(|r| wanted(r)),
            );
        }
        let skip = records.len().saturating_sub(limit);
        records.split_off(skip)
    }
}

impl Drop for Audit {
    /// Lets the writer write what is left and end, instead of waiting for records forever.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a finished call tells its audit record besides its [`Trail`].
pub struct Call<'a> {
    pub profile: &'a str,
    /// The client's name from its hello, or `mcpctl`.
    pub client: &'a str,
    pub method: &'a str,
    pub took: Duration,
    pub request_bytes: usize,
}

/// What a call leaves for its audit record, filled in as it is routed.
#[derive(Default)]
pub struct Trail {
    /// The tool or prompt name, or resource URI, as the client gave it.
    pub name: String,
    /// Shared with the route the call took.
    pub server: Arc<str>,
    pub secrets: Vec<&'static str>,
    pub arguments: Option<Value>,
}

/// A record's line, borrowing what the call holds: the members of a [`CallRecord`], in its order
/// and with its omissions (a test holds [`Line::write`]'s bytes equal to serde's for the record).
struct Line<'a> {
    time: &'a str,
    profile: &'a str,
    client: &'a str,
    server: &'a str,
    method: &'a str,
    name: &'a str,
    duration_ms: f64,
    outcome: &'a str,
    error: Option<&'a str>,
    request_bytes: usize,
    response_bytes: usize,
    secrets: &'a [Cow<'static, str>],
    arguments: Option<&'a Value>,
}

impl Line<'_> {
    /// Appends the line's JSON, without its newline. Written by hand rather than derived: the
    /// derive sends every member's name through serde_json's escaping, and names and the strings
    /// a call holds need none (2.8k of a warm call's 42k instructions went to it).
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let strings = [
            ("{\"time\":", self.time),
            (",\"profile\":", self.profile),
            (",\"client\":", self.client),
            (",\"server\":", self.server),
            (",\"method\":", self.method),
            (",\"name\":", self.name),
        ];
        for (member, text) in strings {
            out.extend_from_slice(member.as_bytes());
            push_string(out, text)?;
        }
        out.extend_from_slice(b",\"duration_ms\":");
        serde_json::to_writer(&mut *out, &self.duration_ms)?;
        out.extend_from_slice(b",\"outcome\":");
        push_string(out, self.outcome)?;
        if let Some(error) = self.error {
            out.extend_from_slice(b",\"error\":");
            push_string(out, error)?;
        }
        out.extend_from_slice(b",\"request_bytes\":");
        serde_json::to_writer(&mut *out, &self.request_bytes)?;
        out.extend_from_slice(b",\"response_bytes\":");
        serde_json::to_writer(&mut *out, &self.response_bytes)?;
        if !self.secrets.is_empty() {
            out.extend_from_slice(b",\"secrets\":");
            serde_json::to_writer(&mut *out, self.secrets)?;
        }
        if let Some(arguments) = self.arguments {
            out.extend_from_slice(b",\"arguments\":");
            serde_json::to_writer(&mut *out, arguments)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Appends `text` as a JSON string, through serde_json only when it needs escapes.
fn push_string(out: &mut Vec<u8>, text: &str) -> serde_json::Result<()> {
    if jsonrpc::is_plain(text) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, text)
    }
}

/// How a call ended, in the audit log's words.
struct Summary {
    outcome: &'static str,
    error: Option<String>,
    response_bytes: usize,
    /// The rules that matched, sorted and unique when a block added its own.
    secrets: Vec<Cow<'static, str>>,
}

impl Summary {
    fn of(outcome: &Result<Reply, GatewayError>, hits: &[&'static str]) -> Summary {
        let mut secrets: Vec<Cow<'static, str>> = hits.iter().copied().map(Cow::Borrowed).collect();
        let (outcome, error, response_bytes) = match outcome {
            Ok(Ok(result)) => {
                let text = result.get();
                // Only results that mention the member and hold a `true` somewhere pay for a
                // parse (nearly every result says `"isError":false`), and it skips the rest.
                let tool_error = text.contains("\"isError\"")
                    && text.contains("true")
                    && serde_json::from_str::<ToolResult>(text)
                        .is_ok_and(|r| r.is_error == Some(true));
                let outcome = if tool_error { "tool_error" } else { "ok" };
                (outcome, None, text.len())
            }
            Ok(Err(error)) => ("error", Some(error.get().to_owned()), error.get().len()),
            Err(GatewayError::Upstream(UpstreamError::Cancelled)) => ("cancelled", None, 0),
            Err(
                err @ (GatewayError::SecretInArguments { rules, .. }
                | GatewayError::SecretInInput { rules, .. }
                | GatewayError::SecretInResult { rules, .. }),
            ) => {
                secrets.extend(rules.split(", ").map(|rule| Cow::Owned(rule.to_owned())));
                secrets.sort();
                secrets.dedup();
                ("blocked", Some(err.to_string()), 0)
            }
            Err(err) => ("error", Some(err.to_string()), 0),
        };
        Summary {
            outcome,
            error,
            response_bytes,
            secrets,
        }
    }
}

/// The one member of a tool result its audit record needs.
#[derive(serde::Deserialize)]
struct ToolResult {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// Record times in words, reusing the text of the second it last put in words: a date costs
/// more to format than the rest of a record, and records come many to a second.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// That second's text up to its milliseconds (`...T12:34:56.`).
    prefix: String,
    /// The last time stamped, RFC 3339 in UTC to the millisecond (`...T12:34:56.789Z`).
    text: String,
}

impl Clock {
    fn stamp(&mut self, time: SystemTime) -> &str {
        let Ok(since) = time.duration_since(SystemTime::UNIX_EPOCH) else {
            self.second = None;
            self.text = stamp(time);
            return &self.text;
        };
        if self.second != Some(since.as_secs()) {
            let text = stamp(time);
            // All but the milliseconds' three digits and the `Z`.
            self.prefix = text[..text.len() - 4].to_owned();
            self.second = Some(since.as_secs());
        }
        let millis = since.subsec_millis();
        self.text.clear();
        self.text.push_str(&self.prefix);
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            self.text.push(char::from_digit(digit, 10).unwrap_or('0'));
        }
        self.text.push('Z');
        &self.text
    }
}

/// A time as the log gives it: RFC 3339 in UTC, to the millisecond.
fn stamp(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn rotated(path: &Path) -> PathBuf {
    path.with_extension("jsonl.1")
}

/// The writer thread: writes whatever lines have gathered since its last write, then sleeps for
/// [`GATHER`]. An idle gateway's first record is written at once; a busy one's in one write per
/// interval.
fn write_records(path: &Path, shared: &Shared) {
    let mut log = LogFile::new(path);
    // The two buffers trade places, so neither is allocated again once grown.
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.lines.is_empty() && !pending.closed {
            pending.waiting = true;
            pending = shared
                .arrived
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
        pending.waiting = false;
        let closed = pending.closed;
        std::mem::swap(&mut pending.lines, &mut batch);
        drop(pending);
        if !batch.is_empty()
            && let Err(err) = log.append(&batch)
        {
            tracing::warn!("cannot write the audit log: {err}");
        }
        batch.clear();
        // A burst's buffer is not kept: the two would hold up to twice the limit for good.
        batch.shrink_to(KEPT_BUFFER);
        if closed {
            return;
        }
        std::thread::sleep(GATHER);
    }
}

/// The log file as the writer holds it, open between batches: a batch costs one `stat` of the
/// path and one write, instead of creating the directory and opening the file each time.
struct LogFile {
    path: PathBuf,
    /// The open file and its (device, inode), to tell whether `path` still names it.
    open: Option<(std::fs::File, (u64, u64))>,
}

impl LogFile {
    fn new(path: &Path) -> LogFile {
        LogFile {
            path: path.to_owned(),
            open: None,
        }
    }

    /// Appends whole lines.
    fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        let mut file = self.current()?;
        file.write_all(lines)
    }

    /// The file to append to: the one held open while the path still names it and it is not
    /// past its size; else the path opened anew, after rotating a full file. A file removed or
    /// replaced by hand is followed to its new self rather than written to unseen.
    fn current(&mut self) -> std::io::Result<&std::fs::File> {
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(&self.path).ok();
        let mut id = on_disk.as_ref().map(|meta| (meta.dev(), meta.ino()));
        if on_disk.is_some_and(|meta| meta.len() > MAX_BYTES) {
            std::fs::rename(&self.path, rotated(&self.path))?;
            id = None;
        }
        let held = self.open.take().filter(|(_, held)| Some(*held) == id);
        let (file, id) = match held {
            Some(open) => open,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(&self.path)?;
                let meta = file.metadata()?;
                (file, (meta.dev(), meta.ino()))
            }
        };
        Ok(&self.open.insert((file, id)).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(server: &str, n: usize) -> CallRecord {
        CallRecord {
            time: format!("2026-11-22T00:00:{n:02}.000Z"),
            profile: "p".into(),
            client: "c".into(),
            server: server.into(),
            method: "tools/call".into(),
            name: format!("tool{n}"),
            duration_ms: 1.5,
            outcome: "ok".into(),
            error: None,
            request_bytes: 10,
            response_bytes: 20,
            secrets: Vec::new(),
            arguments: None,
        }
    }

    /// Records as the writer gets them: whole lines.
    fn lines(records: &[CallRecord]) -> Vec<u8> {
        let mut lines = Vec::new();
        for record in records {
            serde_json::to_writer(&mut lines, record).unwrap();
            lines.push(b'\n');
        }
        lines
    }

    #[test]
    fn records_are_stamped_in_utc_to_the_millisecond() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(86_400_000 + 1_500);
        assert_eq!(stamp(time), "1970-01-02T00:00:01.500Z");
        // The clock's reused second gives the same text as a stamp made afresh, in the same
        // second, the next one, and back again.
        let mut clock = Clock::default();
        for millis in [1_500, 1_007, 1_999, 2_000, 2_043, 1_010, 59_999, 60_000] {
            let time = SystemTime::UNIX_EPOCH + Duration::from_millis(86_400_000 + millis);
            assert_eq!(clock.stamp(time), stamp(time), "{millis}");
        }
    }

    #[test]
    fn a_line_is_the_bytes_serde_writes_for_its_record() {
        let secrets = [Cow::Borrowed("aws-key"), Cow::Owned("jwt".to_owned())];
        let arguments = serde_json::json!({"path": "[REDACTED:jwt]", "n": [1, 2.5, null]});
        let plain = Line {
            time: "2026-12-03T09:00:00.123Z",
            profile: "work",
            client: "claude-code",
            server: "git",
            method: "tools/call",
            name: "git__log",
            duration_ms: 2.0,
            outcome: "ok",
            error: None,
            request_bytes: 0,
            response_bytes: usize::MAX,
            secrets: &[],
            arguments: None,
        };
        let full = Line {
            client: "a \"quoted\" client\\ with a tab\t and \u{1}",
            name: "ünïcode/\u{2028}",
            duration_ms: 0.000_123,
            outcome: "blocked",
            error: Some("the call to \"x\" was blocked\n"),
            request_bytes: 17,
            secrets: &secrets,
            arguments: Some(&arguments),
            ..plain
        };
        for line in [plain, full] {
            let record = CallRecord {
                time: line.time.into(),
                profile: line.profile.into(),
                client: line.client.into(),
                server: line.server.into(),
                method: line.method.into(),
                name: line.name.into(),
                duration_ms: line.duration_ms,
                outcome: line.outcome.into(),
                error: line.error.map(str::to_owned),
                request_bytes: line.request_bytes,
                response_bytes: line.response_bytes,
                secrets: line.secrets.iter().map(|s| s.to_string()).collect(),
                arguments: line.arguments.cloned(),
            };
            let mut written = Vec::new();
            line.write(&mut written).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        }
    }

    #[test]
    fn a_call_is_logged_and_followed_as_the_record_mcpctl_reads() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::start(dir.path());
        let mut feed = audit.follow();
        let call = Call {
            profile: "work",
            client: "claude-code",
            method: "tools/call",
            took: Duration::from_micros(1_250),
            request_bytes: 42,
        };
        let trail = Trail {
            name: "git__log".into(),
            server: "git".into(),
            secrets: vec!["jwt"],
            arguments: Some(serde_json::json!({"path": "[REDACTED:jwt]"})),
        };
        let blocked = GatewayError::SecretInResult {
            tool: "git__log".into(),
            rules: "github-token, jwt".into(),
        };
        audit.record(call, &trail, &Err(blocked));
        let followed = feed.try_recv().unwrap();
        assert_eq!(
            (followed.profile.as_str(), followed.client.as_str()),
            ("work", "claude-code")
        );
        assert_eq!(
            (followed.server.as_str(), followed.name.as_str()),
            ("git", "git__log")
        );
        assert_eq!(
            (followed.method.as_str(), followed.outcome.as_str()),
            ("tools/call", "blocked")
        );
        assert_eq!(followed.secrets, ["github-token", "jwt"]);
        assert_eq!(followed.duration_ms, 1.25);
        assert_eq!((followed.request_bytes, followed.response_bytes), (42, 0));
        assert!(
            followed
                .error
                .as_deref()
                .is_some_and(|e| e.contains("github-token"))
        );
        assert_eq!(followed.arguments, trail.arguments);
        let stamped = chrono::DateTime::parse_from_rfc3339(&followed.time).unwrap();
        assert!((chrono::Utc::now() - stamped.to_utc()).num_seconds().abs() < 60);
        // The writer puts the same record in the file, at once for an idle log.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while audit.last(10, |_| true).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(audit.last(10, |_| true), [followed]);
    }

    #[test]
    fn a_result_flagged_as_an_error_is_recorded_as_a_tool_error() {
        let outcome = |text: &str| {
            let result = serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
            Summary::of(&Ok(Ok(result)), &[]).outcome
        };
        assert_eq!(outcome(r#"{"content":[],"isError":true}"#), "tool_error");
        assert_eq!(outcome(r#"{"isError" : true ,"content":[]}"#), "tool_error");
        assert_eq!(
            outcome(r#"{"content":[{"type":"text","text":"true"}],"isError":false}"#),
            "ok"
        );
        let quoted = r#"{"content":[{"type":"text","text":"\"isError\":true"}],"isError":false}"#;
        assert_eq!(outcome(quoted), "ok");
        assert_eq!(outcome(r#"{"content":[],"isError":"yes"}"#), "ok");
        assert_eq!(outcome(r#"{"content":[]}"#), "ok");
    }

    #[test]
    fn records_rotate_by_size_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = LogFile::new(&path);
        log.append(&lines(&[record("a", 1), record("b", 2)]))
            .unwrap();
        // Make the file look full, so that the next append rotates it.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.set_len(MAX_BYTES + 1).unwrap();
        log.append(&lines(&[record("a", 3)])).unwrap();
        assert!(rotated(&path).exists());
        assert!(std::fs::metadata(&path).unwrap().len() < 1024);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let (feed, _) = broadcast::channel(1);
        let shared = Arc::default();
        let audit = Audit { path, shared, feed };
        let names =
            |records: Vec<CallRecord>| records.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(audit.last(10, |_| true)), ["tool1", "tool2", "tool3"]);
        assert_eq!(
            names(audit.last(10, |r| r.server == "a")),
            ["tool1", "tool3"]
        );
        assert_eq!(names(audit.last(1, |_| true)), ["tool3"]);
    }

    #[test]
    fn a_log_removed_or_replaced_between_batches_is_written_anew_not_into_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("audit.jsonl");
        let mut log = LogFile::new(&path);
        log.append(&lines(&[record("a", 1)])).unwrap();
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        log.append(&lines(&[record("a", 2)])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tool1") && text.contains("tool2"), "{text}");
        // A file put in its place (a restored backup, say) is appended to.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        log.append(&lines(&[record("a", 3)])).unwrap();
        log.append(&lines(&[record("a", 4)])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("tool3") && text.contains("tool4"), "{text}");
    }
}
