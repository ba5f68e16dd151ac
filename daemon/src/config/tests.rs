use super::*;

fn store(dir: &std::path::Path) -> ConfigStore {
    let dirs = Dirs {
        config: dir.join("config"),
        state: dir.join("state"),
    };
    let (store, problems) = ConfigStore::load(dirs);
    assert!(problems.is_empty(), "{problems:?}");
    store
}

fn def(image: &str) -> ServerDef {
    ServerDef {
        image: image.into(),
        command: vec![],
        env: Default::default(),
        secrets: vec![],
        memory: None,
        cpus: None,
        pids: None,
        network: None,
        mounts: vec![],
        idle_timeout: None,
    }
}

#[test]
fn default_profile_exists_without_files_and_follows_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    assert_eq!(store.get().active, DEFAULT_PROFILE);
    assert_eq!(
        store.get().profile(DEFAULT_PROFILE).unwrap().servers,
        Vec::<String>::new()
    );
    store.add_server("beta", def("img:b")).unwrap();
    store.add_server("alpha", def("img:a")).unwrap();
    assert_eq!(
        store.get().profile(DEFAULT_PROFILE).unwrap().servers,
        ["alpha", "beta"]
    );
    assert!(!dir.path().join("config/profiles.toml").exists());
}

#[test]
fn changes_persist_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path());
    first.add_server("alpha", def("img:a")).unwrap();
    first.create_profile("work", vec!["alpha".into()]).unwrap();
    first.use_profile("work").unwrap();
    let second = store(dir.path());
    assert_eq!(*second.get(), *first.get());
    assert_eq!(second.get().active, "work");
}

#[test]
fn invalid_changes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let before = store.get();
    assert!(matches!(
        store.create_profile("work", vec!["ghost".into()]),
        Err(ConfigError::Invalid(msg)) if msg.contains("ghost")
    ));
    assert!(matches!(
        store.use_profile("nope"),
        Err(ConfigError::UnknownProfile(_))
    ));
    assert!(store.add_server("bad name", def("img")).is_err());
    assert_eq!(*store.get(), *before);
    assert!(!dir.path().join("config/profiles.toml").exists());
}

#[test]
fn a_typo_is_reported_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("catalog.toml"),
        "[servers.alpha]\nimage = \"a\"\n\n[servers.beta]\nimgae = \"b\"\n",
    )
    .unwrap();
    let dirs = Dirs {
        config: config.clone(),
        state: dir.path().join("state"),
    };
    let (store, problems) = ConfigStore::load(dirs);
    let message = problems[0].to_string();
    assert!(
        message.starts_with(&format!("{}:5: ", config.join("catalog.toml").display())),
        "{message}"
    );
    assert!(message.contains("imgae"), "{message}");
    assert!(store.get().catalog.servers.is_empty());
}

#[test]
fn a_vanished_active_profile_falls_back_to_default_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/active-profile"), "gone\n").unwrap();
    let dirs = Dirs {
        config: dir.path().join("config"),
        state: dir.path().join("state"),
    };
    let (store, problems) = ConfigStore::load(dirs);
    assert_eq!(store.get().active, DEFAULT_PROFILE);
    assert!(
        matches!(&problems[..], [ConfigError::UnknownProfile(name)] if name == "gone"),
        "{problems:?}"
    );
}

#[test]
fn tool_allow_lists_are_validated_persisted_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path());
    first.add_server("alpha", def("img:a")).unwrap();
    first.add_server("beta", def("img:b")).unwrap();
    first
        .create_profile("work", vec!["alpha".into(), "beta".into()])
        .unwrap();
    for bad in ["echo", "gamma.echo", ".echo"] {
        assert!(
            matches!(first.set_profile_tools("work", vec![bad.into()]), Err(ConfigError::Invalid(m)) if m.contains(bad)),
            "{bad} accepted"
        );
    }
    assert!(matches!(
        first.set_profile_tools(DEFAULT_PROFILE, vec![]),
        Err(ConfigError::Invalid(_))
    ));
    first
        .set_profile_tools("work", vec!["alpha.echo".into(), "beta.*".into()])
        .unwrap();
    let profile = store(dir.path()).get().profile("work").unwrap();
    assert!(profile.allows("alpha", "echo"));
    assert!(!profile.allows("alpha", "whoami"));
    assert!(profile.allows("beta", "anything"));
    assert!(!profile.allows("gamma", "echo"));
    first.set_profile_tools("work", vec![]).unwrap();
    assert!(
        first
            .get()
            .profile("work")
            .unwrap()
            .allows("alpha", "whoami")
    );
}

#[test]
fn run_settings_load_from_both_files_and_bad_ones_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[defaults]\nmemory = \"1g\"\npids = 64\nidle_timeout = 60\n",
    )
    .unwrap();
    std::fs::write(
        config.join("catalog.toml"),
        "[servers.alpha]\nimage = \"a\"\ncpus = 0.5\nnetwork = true\n\
         mounts = [{ source = \"/srv/data\", target = \"/data\", writable = true }]\n",
    )
    .unwrap();
    let dirs = || Dirs {
        config: config.clone(),
        state: dir.path().join("state"),
    };
    let (store, problems) = ConfigStore::load(dirs());
    assert!(problems.is_empty(), "{problems:?}");
    let current = store.get();
    let run = current
        .settings
        .defaults
        .resolve(&current.catalog.servers["alpha"]);
    assert_eq!(run.memory, 1 << 30);
    assert_eq!(run.nano_cpus, 500_000_000);
    assert_eq!(run.pids, 64);
    assert_eq!(run.network, Network::Default);
    assert_eq!(run.idle_timeout, Some(std::time::Duration::from_secs(60)));
    assert!(run.mounts[0].writable());

    // A changed entry is written back in the same form and reads back equal.
    store.add_server("beta", def("b")).unwrap();
    let (again, problems) = ConfigStore::load(dirs());
    assert!(problems.is_empty(), "{problems:?}");
    let mut expected = current.catalog.clone();
    expected.servers.insert("beta".into(), def("b"));
    assert_eq!(again.get().catalog, expected);

    for (line, text) in [
        (
            3,
            "[servers.alpha]\nimage = \"a\"\nmounts = [{ source = \"/\", target = \"/x\" }]\n",
        ),
        (2, "[servers.alpha]\nmemory = \"lots\"\nimage = \"a\"\n"),
        (3, "[servers.alpha]\nimage = \"a\"\nnetwork = \"host\"\n"),
        (2, "[servers.alpha]\npids = 0\nimage = \"a\"\n"),
    ] {
        std::fs::write(config.join("catalog.toml"), text).unwrap();
        let (_, problems) = ConfigStore::load(dirs());
        let message = problems[0].to_string();
        assert!(
            message.starts_with(&format!(
                "{}:{line}: ",
                config.join("catalog.toml").display()
            )),
            "{message}"
        );
    }
}
