//! The audit log: one JSON line per call through the gateway, under the state directory, rotated
//! by size, readable and followable with `mcpctl calls`.
//!
//! Calls hand their record to a writer thread and do not wait for the disk; a log that cannot keep
//! up loses records (counted in the daemon's log) rather than slowing calls. The newest records
//! also go to everyone following the log.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use std::time::{Duration, SystemTime};

use mcp_gateway_proto::CallRecord;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::gateway::GatewayError;
use crate::jsonrpc::Reply;
use crate::upstream::UpstreamError;

/// The file is rotated (to `audit.jsonl.1`, replacing the previous one) past this size.
const MAX_BYTES: u64 = 8 << 20;

/// How long the writer lets records gather after a write before it looks again. While it sleeps a
/// call's record is a queue push that wakes no thread, so a busy gateway pays one wake-up and one
/// append per interval instead of per call; the file lags by at most this much, and followers
/// (`mcpctl calls -f`) get records straight from the call, not from the file.
const GATHER: Duration = Duration::from_millis(10);

pub struct Audit {
    path: PathBuf,
    /// Records with the time they were made, which the writer puts in words.
    queue: std::sync::mpsc::SyncSender<(SystemTime, CallRecord)>,
    feed: broadcast::Sender<CallRecord>,
}

impl Audit {
    /// Opens the log at `dir/audit.jsonl` and starts its writer.
    pub fn start(dir: &Path) -> Audit {
        let path = dir.join("audit.jsonl");
        let (queue, records) = std::sync::mpsc::sync_channel(4096);
        let (feed, _) = broadcast::channel(256);
        let file = path.clone();
        let spawned = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_records(&file, &records));
        if let Err(err) = spawned {
            tracing::error!("no audit log: cannot start its writer: {err}");
        }
        Audit { path, queue, feed }
    }

    /// Logs a call's record, stamped with the time now. The stamp is written out as text by the
    /// writer thread rather than on the call's path (it costs about as much as the rest of the
    /// record), and for followers only while there are any.
    pub fn record(&self, record: CallRecord) {
        let now = SystemTime::now();
        if self.feed.receiver_count() > 0 {
            let _ = self.feed.send(CallRecord {
                time: stamp(now),
                ..record.clone()
            });
        }
        if self.queue.try_send((now, record)).is_err() {
            tracing::warn!("an audit record was lost: the log is not keeping up");
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

/// What a call leaves for its audit record, filled in as it is routed.
#[derive(Default)]
pub struct Trail {
    /// The tool or prompt name, or resource URI, as the client gave it.
    pub name: String,
    pub server: String,
    pub secrets: Vec<&'static str>,
    pub arguments: Option<Value>,
}

impl Trail {
    /// The record of a finished call.
    pub fn record(
        self,
        (profile, client, method): (&str, &str, &str),
        took: Duration,
        request_bytes: usize,
        outcome: &Result<Reply, GatewayError>,
    ) -> CallRecord {
        let mut secrets: Vec<String> = self.secrets.iter().map(|s| s.to_string()).collect();
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
                secrets.extend(rules.split(", ").map(str::to_owned));
                secrets.sort();
                secrets.dedup();
                ("blocked", Some(err.to_string()), 0)
            }
            Err(err) => ("error", Some(err.to_string()), 0),
        };
        CallRecord {
            // Stamped by `Audit::record`.
            time: String::new(),
            profile: profile.to_owned(),
            client: client.to_owned(),
            server: self.server,
            method: method.to_owned(),
            name: self.name,
            duration_ms: took.as_secs_f64() * 1000.0,
            outcome: outcome.to_owned(),
            error,
            request_bytes,
            response_bytes,
            secrets,
            arguments: self.arguments,
        }
    }
}

/// The one member of a tool result its audit record needs.
#[derive(serde::Deserialize)]
struct ToolResult {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// A record's time as the log gives it: RFC 3339 in UTC, to the millisecond.
fn stamp(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn rotated(path: &Path) -> PathBuf {
    path.with_extension("jsonl.1")
}

/// The writer thread: writes whatever has queued up since its last write, then sleeps for
/// [`GATHER`]. An idle gateway's first record is written at once; a busy one's in one append per
/// interval.
fn write_records(path: &Path, records: &std::sync::mpsc::Receiver<(SystemTime, CallRecord)>) {
    let mut log = LogFile::new(path);
    while let Ok(first) = records.recv() {
        let batch: Vec<CallRecord> = std::iter::once(first)
            .chain(records.try_iter())
            .map(|(time, record)| CallRecord {
                time: stamp(time),
                ..record
            })
            .collect();
        if let Err(err) = log.append(&batch) {
            tracing::warn!("cannot write the audit log: {err}");
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

    fn append(&mut self, batch: &[CallRecord]) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(self.current()?);
        for record in batch {
            serde_json::to_writer(&mut file, record)?;
            file.write_all(b"\n")?;
        }
        file.flush()
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

    #[test]
    fn records_are_stamped_in_utc_to_the_millisecond() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(86_400_000 + 1_500);
        assert_eq!(stamp(time), "1970-01-02T00:00:01.500Z");
    }

    #[test]
    fn a_result_flagged_as_an_error_is_recorded_as_a_tool_error() {
        let outcome = |text: &str| {
            let result = serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
            let took = Duration::ZERO;
            Trail::default()
                .record(("p", "c", "tools/call"), took, 0, &Ok(Ok(result)))
                .outcome
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
        log.append(&[record("a", 1), record("b", 2)]).unwrap();
        // Make the file look full, so that the next append rotates it.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.set_len(MAX_BYTES + 1).unwrap();
        log.append(&[record("a", 3)]).unwrap();
        assert!(rotated(&path).exists());
        assert!(std::fs::metadata(&path).unwrap().len() < 1024);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let (queue, _) = std::sync::mpsc::sync_channel(1);
        let (feed, _) = broadcast::channel(1);
        let audit = Audit { path, queue, feed };
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
        log.append(&[record("a", 1)]).unwrap();
        std::fs::remove_dir_all(dir.path().join("state")).unwrap();
        log.append(&[record("a", 2)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tool1") && text.contains("tool2"), "{text}");
        // A file put in its place (a restored backup, say) is appended to.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "").unwrap();
        log.append(&[record("a", 3)]).unwrap();
        log.append(&[record("a", 4)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("tool3") && text.contains("tool4"), "{text}");
    }
}
