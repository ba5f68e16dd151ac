//! Image pulls in flight: a missing image is pulled once however many callers need it at the same
//! time, and everyone who waits (container starts, `mcpctl server pull`, `server ls`) sees the
//! same progress. A pull runs in a task of its own, so a caller that gives up (a client gone, an
//! interrupted `mcpctl`) neither cancels it for the others nor leaves a half-pulled image.
//!
//! Progress also goes to the service manager (`STATUS=pulling IMAGE 37%`), since a first start
//! that waits for a pull is what a user staring at `systemctl --user status` wants explained.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::docker::{Engine, Image, PullEvent};
use crate::notify;

/// How often at most a pull's share goes to the service manager.
const STATUS_EVERY: Duration = Duration::from_millis(200);

/// Where a pull is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullState {
    Running(Progress),
    /// The pull ended: the image is there (and matches its pinned digest), or why not.
    Done(Result<(), String>),
}

/// A running pull as people see it: the engine's last status and the share of the layers'
/// bytes downloaded, once the engine has said how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    pub status: String,
    pub percent: Option<u8>,
}

#[derive(Default)]
pub struct Pulls {
    in_flight: Arc<Mutex<HashMap<String, watch::Receiver<PullState>>>>,
}

impl Pulls {
    /// Makes sure the engine holds `image` as it should run, pulling it if not, and gives what a
    /// container start needs of it. A pull of the image already in flight (say, `mcpctl server
    /// pull`) is waited for rather than bypassed.
    pub async fn ensure(&self, engine: &Arc<Engine>, image: &str) -> Result<Image, String> {
        let joined = lock(&self.in_flight).get(image).cloned();
        let pull = match joined {
            Some(pull) => pull,
            None => match engine.ready_image(image).await.map_err(|e| e.to_string())? {
                Some(ready) => return Ok(ready),
                None => self.pull(engine, image),
            },
        };
        finished(pull).await?;
        engine.image(image).await.map_err(|e| e.to_string())
    }

    /// Starts pulling `image` unless a pull of it is in flight; either way, the pull's progress.
    pub fn pull(&self, engine: &Arc<Engine>, image: &str) -> watch::Receiver<PullState> {
        let mut in_flight = lock(&self.in_flight);
        if let Some(pull) = in_flight.get(image) {
            return pull.clone();
        }
        let (sender, receiver) = watch::channel(PullState::Running(Progress::default()));
        in_flight.insert(image.to_owned(), receiver.clone());
        let engine = Arc::clone(engine);
        let image = image.to_owned();
        let registry = Arc::clone(&self.in_flight);
        tokio::spawn(async move {
            tracing::info!("pulling image {image}");
            notify::status(&format!("pulling {image}"));
            let mut meter = Meter::default();
            let mut told: Option<(Instant, u8)> = None;
            let result = engine
                .pull(&image, |event| {
                    let Some(progress) = meter.update(&event) else {
                        return;
                    };
                    // The service manager hears of a new share at most every STATUS_EVERY (and
                    // always of 100%): each message is a blocking send to its socket.
                    if let Some(percent) = progress.percent
                        && told.is_none_or(|(at, last)| {
                            last != percent && (percent == 100 || at.elapsed() >= STATUS_EVERY)
                        })
                    {
                        notify::status(&format!("pulling {image} {percent}%"));
                        told = Some((Instant::now(), percent));
                    }
                    sender.send_replace(PullState::Running(progress));
                })
                .await
                .map_err(|err| err.to_string());
            match &result {
                Ok(()) => tracing::info!("pulled image {image}"),
                Err(err) => tracing::warn!("{err}"),
            }
            // Out of the table before the result is out: whoever comes after the result finds
            // the image present (or pulls again after a failure) instead of a finished pull.
            let others = {
                let mut in_flight = lock(&registry);
                in_flight.remove(&image);
                !in_flight.is_empty()
            };
            if !others {
                notify::engine_connected(&engine.description);
            }
            sender.send_replace(PullState::Done(result));
        });
        receiver
    }

    /// The pulls in flight and how far each is, sorted by image.
    pub fn in_flight(&self) -> Vec<(String, Progress)> {
        let mut pulls: Vec<_> = lock(&self.in_flight)
            .iter()
            .filter_map(|(image, pull)| match &*pull.borrow() {
                PullState::Running(progress) => Some((image.clone(), progress.clone())),
                PullState::Done(_) => None,
            })
            .collect();
        pulls.sort_by(|a, b| a.0.cmp(&b.0));
        pulls
    }
}

/// Waits for a pull's end and returns its outcome.
async fn finished(mut pull: watch::Receiver<PullState>) -> Result<(), String> {
    loop {
        if let PullState::Done(result) = &*pull.borrow_and_update() {
            return result.clone();
        }
        if pull.changed().await.is_err() {
            return Err("the pull ended without a result".into());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds up the engine's per-layer messages into one [`Progress`].
#[derive(Default)]
struct Meter {
    /// Bytes downloaded and in all, per layer whose size the engine told.
    layers: HashMap<String, (u64, u64)>,
    last: Progress,
}

impl Meter {
    /// The progress after `event`, when it differs from the last one reported.
    fn update(&mut self, event: &PullEvent) -> Option<Progress> {
        if let Some(layer) = &event.layer {
            match (event.status.as_str(), event.current, event.total) {
                ("Downloading", Some(current), Some(total)) if total > 0 => {
                    self.layers
                        .insert(layer.clone(), (current.min(total), total));
                }
                // A finished layer counts in full, whatever its last `Downloading` said.
                ("Download complete" | "Pull complete", _, _) => {
                    if let Some((current, total)) = self.layers.get_mut(layer) {
                        *current = *total;
                    }
                }
                _ => {}
            }
        }
        let (done, total) = self
            .layers
            .values()
            .fold((0u64, 0u64), |(d, t), (current, total)| {
                (d + current, t + total)
            });
        let progress = Progress {
            status: event.status.clone(),
            percent: (total > 0).then(|| u8::try_from(done * 100 / total).unwrap_or(100)),
        };
        (progress != self.last).then(|| {
            self.last = progress.clone();
            progress
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(layer: &str, status: &str, bytes: Option<(u64, u64)>) -> PullEvent {
        PullEvent {
            layer: (!layer.is_empty()).then(|| layer.to_owned()),
            status: status.to_owned(),
            current: bytes.map(|b| b.0),
            total: bytes.map(|b| b.1),
        }
    }

    #[test]
    fn progress_is_the_share_of_all_layers_bytes_and_only_changes_are_reported() {
        let mut meter = Meter::default();
        let first = meter
            .update(&event("", "Pulling from fixture", None))
            .unwrap();
        assert_eq!(first.percent, None);
        assert_eq!(meter.update(&event("", "Pulling from fixture", None)), None);
        meter.update(&event("a", "Pulling fs layer", None));
        let a = meter
            .update(&event("a", "Downloading", Some((30, 100))))
            .unwrap();
        assert_eq!(a.percent, Some(30));
        let b = meter
            .update(&event("b", "Downloading", Some((0, 300))))
            .unwrap();
        assert_eq!(b.percent, Some(7));
        // The same status and share again is no news.
        assert_eq!(
            meter.update(&event("b", "Downloading", Some((1, 300)))),
            None
        );
        meter.update(&event("a", "Download complete", None));
        let b = meter
            .update(&event("b", "Downloading", Some((150, 300))))
            .unwrap();
        assert_eq!(b.percent, Some(62));
        let done = meter.update(&event("b", "Pull complete", None)).unwrap();
        assert_eq!(
            done,
            Progress {
                status: "Pull complete".into(),
                percent: Some(100)
            }
        );
    }
}
