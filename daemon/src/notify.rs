//! Messages to the service manager (`sd_notify`). Every call is a no-op when `NOTIFY_SOCKET` is
//! unset, so callers need no "am I under systemd" checks.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {err}");
    }
}

/// The daemon accepts connections.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A human-readable state for `systemctl --user status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// The state once the engine answers and nothing is pulling: ready, on which engine.
pub fn engine_connected(description: &str) {
    status(&format!("ready; engine: {description}"));
}

/// The daemon is draining its sessions and will exit.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Pings the service manager's watchdog at half the interval it asks for (`WatchdogSec=`), from a
/// task on the daemon's runtime, so a wedged runtime stops the pings and gets the daemon restarted.
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval / 2);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}
