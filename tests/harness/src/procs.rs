//! What `/proc` says about a process's children, for the checks that a client killed mid-call
//! leaves no process or zombie behind (the leak test and the benchmark's leak figure).

/// The direct children of `pid`: how many, and how many of them are zombies.
pub fn children(pid: u32) -> std::io::Result<(u64, u64)> {
    let mut children = 0;
    let mut zombies = 0;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        // A process may exit between the listing and the read; it is then nobody's child.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields follow the last `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        if fields.next().and_then(|ppid| ppid.parse::<u32>().ok()) == Some(pid) {
            children += 1;
            if state == Some("Z") {
                zombies += 1;
            }
        }
    }
    Ok((children, zombies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_child_and_then_its_zombie_are_counted() {
        let me = std::process::id();
        let (before, _) = children(me).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        // `true` exits at once and stays a zombie until it is waited for.
        let limit = Instant::now() + Duration::from_secs(5);
        while children(me).unwrap().1 == 0 {
            assert!(Instant::now() < limit, "no zombie seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(children(me).unwrap().0, before + 1);
        child.wait().unwrap();
        assert_eq!(
            children(me).unwrap(),
            (before, 0),
            "the reaped child is gone"
        );
    }
}
