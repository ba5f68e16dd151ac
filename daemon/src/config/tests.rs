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
        ..Default::default()
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
fn isolation_is_read_persisted_and_a_misspelt_mode_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path());
    let mut solo = def("img:s");
    solo.isolation = Isolation::Session;
    first.add_server("solo", solo).unwrap();
    first.add_server("alpha", def("img:a")).unwrap();
    let catalog = dir.path().join("config/catalog.toml");
    let text = std::fs::read_to_string(&catalog).unwrap();
    // Shared is the default and is not written out.
    assert_eq!(text.matches("isolation").count(), 1, "{text}");
    assert!(text.contains("isolation = \"session\""), "{text}");
    let second = store(dir.path());
    assert_eq!(
        second.get().catalog.servers["solo"].isolation,
        Isolation::Session
    );
    assert_eq!(
        second.get().catalog.servers["alpha"].isolation,
        Isolation::Shared
    );

    std::fs::write(
        &catalog,
        "[servers.solo]\nimage = \"s\"\nisolation = \"sesion\"\n",
    )
    .unwrap();
    let dirs = Dirs {
        config: dir.path().join("config"),
        state: dir.path().join("state"),
    };
    let (_, problems) = ConfigStore::load(dirs);
    let message = problems[0].to_string();
    assert!(
        message.starts_with(&format!("{}:3: ", catalog.display())),
        "{message}"
    );
    assert!(message.contains("sesion"), "{message}");
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

/// A store with servers alpha and beta and a profile `work` holding both, allowing `beta.*`.
fn work_store(dir: &std::path::Path) -> ConfigStore {
    let store = store(dir);
    store.add_server("alpha", def("img:a")).unwrap();
    store.add_server("beta", def("img:b")).unwrap();
    store
        .create_profile("work", vec!["alpha".into(), "beta".into()])
        .unwrap();
    store
        .set_profile_tools("work", vec!["alpha.echo".into(), "beta.*".into()])
        .unwrap();
    store
}

#[test]
fn profiles_are_removed_unless_active_or_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let store = work_store(dir.path());
    store
        .set_profile_config("work", "alpha", "MODE", Some("fast"))
        .unwrap();
    store.use_profile("work").unwrap();
    assert!(matches!(
        store.remove_profile("work"),
        Err(ConfigError::Invalid(m)) if m.contains("active") && m.contains("profile use")
    ));
    assert!(matches!(
        store.remove_profile(DEFAULT_PROFILE),
        Err(ConfigError::Invalid(m)) if m.contains("built in")
    ));
    assert!(matches!(
        store.remove_profile("nope"),
        Err(ConfigError::UnknownProfile(_))
    ));
    store.use_profile(DEFAULT_PROFILE).unwrap();
    store.remove_profile("work").unwrap();
    let reloaded = self::store(dir.path()).get();
    assert!(reloaded.profile("work").is_none());
    assert!(reloaded.profiles.config.is_empty(), "its values went too");
}

#[test]
fn servers_join_and_leave_profiles_with_their_rules_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = work_store(dir.path());
    store.add_server("gamma", def("img:c")).unwrap();
    assert_eq!(
        store
            .add_profile_servers("work", &["alpha".into(), "gamma".into()])
            .unwrap(),
        ["gamma"]
    );
    assert!(matches!(
        store.add_profile_servers("work", &["ghost".into()]),
        Err(ConfigError::Invalid(m)) if m.contains("ghost")
    ));
    store
        .set_profile_config("work", "beta", "MODE", Some("slow"))
        .unwrap();
    store
        .remove_profile_servers("work", &["beta".into()])
        .unwrap();
    let profile = store.get().profile("work").unwrap();
    assert_eq!(profile.servers, ["alpha", "gamma"]);
    assert_eq!(profile.tools, ["alpha.echo"]);
    assert!(store.get().server_values("work", "beta").is_empty());
    assert!(matches!(
        store.remove_profile_servers("work", &["beta".into()]),
        Err(ConfigError::Invalid(m)) if m.contains("no server")
    ));
}

#[test]
fn prefix_and_values_persist_and_secret_looking_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = work_store(dir.path());
    store.set_profile_prefix("work", true).unwrap();
    store
        .set_profile_config("work", "alpha", "MODE", Some("fast"))
        .unwrap();
    for (key, value) in [
        ("GITHUB_TOKEN", "abc"),
        ("api_key", "x"),
        ("MODE", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"),
    ] {
        assert!(
            matches!(
                store.set_profile_config("work", "alpha", key, Some(value)),
                Err(ConfigError::Invalid(m)) if m.contains("mcpctl secret set")
            ),
            "{key}={value} accepted"
        );
    }
    assert!(matches!(
        store.set_profile_config("work", "alpha", "BAD-KEY", Some("v")),
        Err(ConfigError::Invalid(_))
    ));
    assert!(matches!(
        store.set_profile_config("work", "ghost", "MODE", Some("v")),
        Err(ConfigError::Invalid(m)) if m.contains("ghost")
    ));
    let text = std::fs::read_to_string(dir.path().join("config/profiles.toml")).unwrap();
    assert!(text.contains("[config.work.alpha]"), "{text}");
    let reloaded = self::store(dir.path()).get();
    assert!(reloaded.profile("work").unwrap().prefix);
    assert_eq!(reloaded.server_values("work", "alpha")["MODE"], "fast");
    store
        .set_profile_config("work", "alpha", "MODE", None)
        .unwrap();
    assert!(store.get().profiles.config.is_empty());
    assert!(
        store
            .set_profile_config("work", "alpha", "MODE", None)
            .is_err()
    );
}

#[test]
fn a_server_in_use_is_removed_only_by_force_which_clears_the_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let store = work_store(dir.path());
    assert!(matches!(
        store.remove_server("beta", false),
        Err(ConfigError::Invalid(m)) if m.contains("work") && m.contains("--force")
    ));
    assert!(matches!(
        store.remove_server("ghost", false),
        Err(ConfigError::UnknownServer(_))
    ));
    assert_eq!(store.remove_server("beta", true).unwrap(), ["work"]);
    let reloaded = self::store(dir.path()).get();
    assert!(!reloaded.catalog.servers.contains_key("beta"));
    assert_eq!(reloaded.profile("work").unwrap().tools, ["alpha.echo"]);
    store.create_profile("solo", vec![]).unwrap();
    assert!(store.remove_server("alpha", false).is_err());
    store
        .remove_profile_servers("work", &["alpha".into()])
        .unwrap();
    assert_eq!(
        store.remove_server("alpha", false).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_reload_takes_hand_edits_and_a_broken_file_keeps_the_last_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let store = work_store(dir.path());
    let catalog = dir.path().join("config/catalog.toml");
    std::fs::write(
        &catalog,
        "[servers.alpha]\nimage = \"img:a2\"\n[servers.beta]\nimage = \"img:b\"\n",
    )
    .unwrap();
    store.reload().unwrap();
    assert_eq!(store.get().catalog.servers["alpha"].image, "img:a2");
    let good = store.get();
    std::fs::write(&catalog, "[servers.alpha]\nimage = \"img:a3\"\nimgae = 1\n").unwrap();
    let problems = store.reload().unwrap_err();
    let message = problems[0].to_string();
    assert!(
        message.starts_with(&format!("{}:3: ", catalog.display())),
        "{message}"
    );
    assert_eq!(*store.get(), *good);
    // Valid TOML that breaks a rule (a profile names a server that is gone) is refused too.
    std::fs::write(&catalog, "[servers.alpha]\nimage = \"img:a3\"\n").unwrap();
    let problems = store.reload().unwrap_err();
    assert!(problems[0].to_string().contains("beta"), "{problems:?}");
    assert_eq!(*store.get(), *good);
}

#[test]
fn a_hand_edit_not_yet_reloaded_is_read_before_the_next_change_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store.add_server("alpha", def("img:a")).unwrap();
    assert!(store.problems().is_empty());
    let catalog = dir.path().join("config/catalog.toml");
    let text = std::fs::read_to_string(&catalog).unwrap();
    std::fs::write(
        &catalog,
        format!("# mine\n{text}\n[servers.beta]\nimage = \"img:b\"\n"),
    )
    .unwrap();
    let pending = store.problems();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(!pending[0].broken);
    assert!(
        pending[0].message.contains("catalog.toml") && pending[0].message.contains("mcpctl reload"),
        "{pending:?}"
    );

    store.add_server("gamma", def("img:g")).unwrap();
    let servers: Vec<_> = store.get().catalog.servers.keys().cloned().collect();
    assert_eq!(servers, ["alpha", "beta", "gamma"]);
    let on_disk: Catalog = files::read_toml(&catalog).unwrap();
    assert_eq!(
        on_disk.servers.keys().collect::<Vec<_>>(),
        ["alpha", "beta", "gamma"]
    );
    assert!(store.problems().is_empty());
}

#[test]
fn a_broken_hand_edit_refuses_changes_to_its_file_and_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store.add_server("alpha", def("img:a")).unwrap();
    let before = store.get();
    let catalog = dir.path().join("config/catalog.toml");
    let broken = "[servers.alpha]\nimage = \"img:a\"\n[servers.beta]\nimgae = \"img:b\"\n";
    std::fs::write(&catalog, broken).unwrap();
    let pending = store.problems();
    assert!(
        pending.iter().all(|p| p.broken) && !pending.is_empty(),
        "{pending:?}"
    );
    assert!(
        pending[0]
            .message
            .starts_with(&format!("{}:", catalog.display())),
        "{pending:?}"
    );

    let err = store
        .add_server("gamma", def("img:g"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{} was edited by hand", catalog.display()))
            && err.contains(&format!("{}:4: ", catalog.display()))
            && err.contains("mcpctl reload"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&catalog).unwrap(), broken);
    assert_eq!(*store.get(), *before);
    // A change to another file goes ahead on the configuration in force.
    store.create_profile("work", vec!["alpha".into()]).unwrap();
    assert_eq!(std::fs::read_to_string(&catalog).unwrap(), broken);

    // Once the file is corrected, the next change starts from it.
    std::fs::write(&catalog, broken.replace("imgae", "image")).unwrap();
    store.add_server("gamma", def("img:g")).unwrap();
    let servers: Vec<_> = store.get().catalog.servers.keys().cloned().collect();
    assert_eq!(servers, ["alpha", "beta", "gamma"]);
}

#[test]
fn a_file_broken_at_start_is_never_overwritten_by_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    let broken = "[servers.alpha\nimage = \"img:a\"\n";
    std::fs::write(config.join("catalog.toml"), broken).unwrap();
    let (store, problems) = ConfigStore::load(Dirs {
        config: config.clone(),
        state: dir.path().join("state"),
    });
    assert_eq!(problems.len(), 1);
    assert!(store.problems()[0].broken);
    assert!(matches!(
        store.add_server("beta", def("img:b")),
        Err(ConfigError::EditedOnDisk { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(config.join("catalog.toml")).unwrap(),
        broken
    );
}

#[tokio::test]
async fn changes_off_the_runtime_thread_apply_and_persist_in_the_order_they_came() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(work_store(dir.path()));
    for n in 0..4 {
        store.create_profile(&format!("p{n}"), Vec::new()).unwrap();
    }
    // All asked at once: the blocking pool would run them on as many threads, in any order,
    // the more so as a slow disk takes longer for some than for others.
    let applied = Arc::new(Mutex::new(Vec::new()));
    let changes = (0..40u64).map(|n| {
        let applied = Arc::clone(&applied);
        store.in_turn(move |store| {
            std::thread::sleep(std::time::Duration::from_millis(n % 5));
            applied.lock().unwrap().push(n);
            store.use_profile(&format!("p{}", n % 4))
        })
    });
    for result in futures_util::future::join_all(changes).await {
        result.unwrap();
    }
    assert_eq!(*applied.lock().unwrap(), (0..40).collect::<Vec<_>>());
    assert_eq!(store.get().active, "p3");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state/active-profile")).unwrap(),
        "p3\n",
        "the last change is the one on disk"
    );
}
