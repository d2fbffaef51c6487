use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
}

/// Each bad case carries its expectation in its body: `expect-line: N` and `expect: substring`.
fn expectations(path: &Path) -> (usize, String) {
    let text = fs::read_to_string(path).unwrap();
    let mut line = 0;
    let mut expect = String::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("expect-line: ") {
            line = v.trim().parse().unwrap();
        }
        if let Some(v) = l.strip_prefix("expect: ") {
            expect = v.to_owned();
        }
    }
    assert!(
        line > 0 && !expect.is_empty(),
        "{} lacks expectations",
        path.display()
    );
    (line, expect)
}

fn check_bad_cases(dir: &str, load: impl Fn(&Path) -> Result<(), ManifestError>) -> usize {
    let mut count = 0;
    for entry in fs::read_dir(testdata(dir)).unwrap() {
        let path = entry.unwrap().path();
        let (want_line, want) = expectations(&path);
        let err = match load(&path) {
            Ok(()) => panic!("{} loaded but should fail", path.display()),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert!(shown.contains(&want), "{}: {shown}", path.display());
        match err {
            ManifestError::Invalid { line, .. } => {
                assert_eq!(line, want_line, "{}: {shown}", path.display())
            }
            other => panic!("{}: unexpected error kind {other:?}", path.display()),
        }
        count += 1;
    }
    count
}

#[test]
fn every_bad_bottle_fails_with_its_message_and_line() {
    let n = check_bad_cases("bad-bottles", |p| load_bottle(p, "case").map(|_| ()));
    assert!(n >= 20, "only {n} cases");
}

#[test]
fn every_bad_agent_fails_with_its_message_and_line() {
    let n = check_bad_cases("bad-agents", |p| {
        load_agent(p, "case", Origin::Home).map(|_| ())
    });
    assert!(n >= 5, "only {n} cases");
}

const FULL_BOTTLE: &str = r#"---
# A bottle as the seeds wrote it.
env:
  EDITOR: vim
  GREETING: "yes"
egress:
  allowlist:
    - registry.npmjs.org
    - "*.GitHub.com"
    - api.example.net:8443
cred_proxy:
  routes:
    - path: /anthropic/
      upstream: https://api.anthropic.com
      auth_scheme: Bearer
      token_ref: CLAUDE_BOTTLE_OAUTH_TOKEN
      role: anthropic-base-url
    - path: /npm
      upstream: https://registry.npmjs.org
      auth_scheme: Bearer
      token_ref: NPM_TOKEN
      role: [npm-registry]
    - path: /gitea/
      upstream: https://gitea.example.com
      auth_scheme: token
      token_ref: GITEA_TOKEN
      role:
        - git-insteadof
        - tea-login
    - path: /gitea2/
      upstream: https://gitea2.example.com
      auth_scheme: token
      token_ref: GITEA_TOKEN
      role: git-insteadof
git:
  - Name: origin
    Upstream: git@github.com:me/repo.git
    IdentityFile: ~/.ssh/id_ed25519
    KnownHostKey: "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    ExtraHosts:
      github.com: 140.82.112.3
git_user:
  name: "Ada Lovelace"
  email: ada@example.com
---
This body is documentation for humans.
"#;

#[test]
fn full_seeds_bottle_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev.md");
    fs::write(&path, FULL_BOTTLE).unwrap();
    let b = load_bottle(&path, "dev").unwrap();
    assert_eq!(b.name, "dev");
    assert_eq!(
        b.env,
        vec![
            ("EDITOR".to_owned(), "vim".to_owned()),
            ("GREETING".to_owned(), "yes".to_owned())
        ]
    );
    assert_eq!(
        b.allowlist,
        vec!["registry.npmjs.org", "*.github.com", "api.example.net:8443"]
    );
    assert_eq!(b.routes.len(), 4);
    assert_eq!(b.routes[0].roles, vec![Role::AnthropicBaseUrl]);
    assert_eq!(b.routes[1].path, "/npm/");
    assert_eq!(b.routes[1].roles, vec![Role::NpmRegistry]);
    assert_eq!(b.routes[2].roles, vec![Role::GitInsteadof, Role::TeaLogin]);
    assert_eq!(b.routes[3].roles, vec![Role::GitInsteadof]);
    assert_eq!(b.git.len(), 1);
    assert_eq!(b.git[0].identity_file, "~/.ssh/id_ed25519");
    assert_eq!(
        b.git[0].extra_hosts,
        vec![("github.com".to_owned(), "140.82.112.3".to_owned())]
    );
    assert_eq!(b.git_user.as_ref().unwrap().name, "Ada Lovelace");
}

#[test]
fn agent_with_subagent_keys_loads_and_trims_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviewer.md");
    fs::write(
        &path,
        "---\nname: reviewer\ndescription: \"Reviews code: carefully\"\nmodel: opus\ncolor: blue\nmemory: project\ntools: Read, Grep, Glob\ndisallowedTools:\n  - Write\npermissionMode: plan\nbottle: dev\nskills:\n  - review\n  - test-writer\n---\n\n  You review code.\n\n",
    )
    .unwrap();
    let a = load_agent(&path, "reviewer", Origin::Repo).unwrap();
    assert_eq!(a.bottle.as_deref(), Some("dev"));
    assert_eq!(a.skills, vec!["review", "test-writer"]);
    assert_eq!(a.system_prompt, "You review code.");
    assert_eq!(a.origin, Origin::Repo);
}

#[test]
fn agent_without_frontmatter_is_all_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.md");
    fs::write(&path, "Just do it.\n").unwrap();
    let a = load_agent(&path, "plain", Origin::Home).unwrap();
    assert_eq!(a.bottle, None);
    assert_eq!(a.system_prompt, "Just do it.");
}

struct Tree {
    _dir: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home/.claude-bottle");
    let repo = dir.path().join("work/project");
    fs::create_dir_all(home.join("bottles")).unwrap();
    fs::create_dir_all(home.join("agents")).unwrap();
    fs::create_dir_all(repo.join(".git")).unwrap();
    fs::create_dir_all(repo.join("src/deep")).unwrap();
    fs::create_dir_all(repo.join(".claude-bottle/agents")).unwrap();
    Tree {
        _dir: dir,
        home,
        repo,
    }
}

#[test]
fn catalog_finds_home_and_repo_agents_from_a_subdirectory() {
    let t = tree();
    fs::write(t.home.join("bottles/dev.md"), "---\nenv:\n  A: b\n---\n").unwrap();
    fs::write(t.home.join("agents/mine.md"), "---\nbottle: dev\n---\nhi").unwrap();
    fs::write(
        t.repo.join(".claude-bottle/agents/proj.md"),
        "---\nbottle: dev\n---\nrepo",
    )
    .unwrap();
    let c = Catalog::discover(&t.home, &t.repo.join("src/deep"));
    assert_eq!(c.agents["mine"].1, Origin::Home);
    assert_eq!(c.agents["proj"].1, Origin::Repo);
    let r = c.resolve("proj").unwrap();
    assert_eq!(r.bottle.name, "dev");
    assert_eq!(r.agent.system_prompt, "repo");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn repo_agents_that_leave_the_repository_are_ignored() {
    let t = tree();
    let outside = t.home.join("credentials.md");
    fs::write(&outside, "https://user:hunter2@git.example\n").unwrap();
    let agents = t.repo.join(".claude-bottle/agents");
    std::os::unix::fs::symlink(&outside, agents.join("review.md")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", agents.join("zero.md")).unwrap();
    fs::write(agents.join("real.md"), "prompt").unwrap();
    std::os::unix::fs::symlink(agents.join("real.md"), agents.join("alias.md")).unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    assert!(!c.agents.contains_key("review"), "a link out of the repo");
    assert!(!c.agents.contains_key("zero"), "a device");
    assert_eq!(
        c.agents["alias"].1,
        Origin::Repo,
        "a link inside the repo is fine"
    );
    let warned = c.warnings.join("\n");
    assert!(
        warned.contains("review.md") && warned.contains("outside the repository"),
        "{warned}"
    );
    assert!(warned.contains("zero.md"), "{warned}");
    assert!(c.resolve("review").is_err());
}

#[test]
fn a_manifest_larger_than_the_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.md");
    fs::write(&path, "x".repeat(super::MAX_MANIFEST_BYTES as usize + 1)).unwrap();
    let err = load_agent(&path, "big", Origin::Home)
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than 128 KiB"), "{err}");
    fs::write(&path, "x".repeat(super::MAX_MANIFEST_BYTES as usize)).unwrap();
    assert!(load_agent(&path, "big", Origin::Home).is_ok());
}

#[test]
fn repo_bottles_are_ignored_with_a_warning() {
    let t = tree();
    fs::create_dir_all(t.repo.join(".claude-bottle/bottles")).unwrap();
    fs::write(
        t.repo.join(".claude-bottle/bottles/evil.md"),
        "---\negress:\n  allowlist: [evil.example]\n---\n",
    )
    .unwrap();
    fs::write(
        t.repo.join(".claude-bottle/agents/a.md"),
        "---\nbottle: evil\n---\n",
    )
    .unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("bottles are read only from")));
    assert!(!c.bottles.contains_key("evil"));
    let err = c.resolve("a").unwrap_err();
    assert!(
        matches!(err, ManifestError::NotFound { kind: "bottle", .. }),
        "{err}"
    );
}

#[test]
fn bad_names_are_skipped_with_a_warning() {
    let t = tree();
    for bad in ["Upper.md", "1st.md", "under_score.md", "dot.ted.md"] {
        fs::write(t.home.join("agents").join(bad), "hi").unwrap();
    }
    fs::write(t.home.join("agents/notes.txt"), "ignored silently").unwrap();
    fs::write(t.home.join("agents/ok-1.md"), "hi").unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    assert_eq!(c.agents.keys().collect::<Vec<_>>(), vec!["ok-1"]);
    assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
    let err = c.resolve("Upper").unwrap_err();
    assert!(matches!(err, ManifestError::BadName { .. }), "{err}");
}

#[test]
fn home_agent_shadows_repo_agent() {
    let t = tree();
    fs::write(t.home.join("agents/same.md"), "home").unwrap();
    fs::write(t.repo.join(".claude-bottle/agents/same.md"), "repo").unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    assert_eq!(c.resolve("same").unwrap().agent.system_prompt, "home");
    assert!(c.warnings.iter().any(|w| w.contains("shadowed")));
}

#[test]
fn agent_without_bottle_gets_default() {
    let t = tree();
    fs::write(t.home.join("agents/a.md"), "hi").unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    let r = c.resolve("a").unwrap();
    assert_eq!(r.bottle.name, "default");
    assert!(r.bottle.routes.is_empty());
    fs::write(
        t.home.join("bottles/default.md"),
        "---\nenv:\n  X: z\n---\n",
    )
    .unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    assert_eq!(c.resolve("a").unwrap().bottle.env.len(), 1);
}

#[test]
fn missing_agent_and_bottle_are_named() {
    let t = tree();
    fs::write(t.home.join("agents/a.md"), "---\nbottle: nope\n---\n").unwrap();
    let c = Catalog::discover(&t.home, &t.repo);
    let e = c.resolve("ghost").unwrap_err().to_string();
    assert!(e.contains("no agent named `ghost`"), "{e}");
    let e = c.resolve("a").unwrap_err().to_string();
    assert!(e.contains("no bottle named `nope`"), "{e}");
}

#[test]
fn home_equal_to_repo_dir_is_not_scanned_twice() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(".claude-bottle");
    fs::create_dir_all(home.join("agents")).unwrap();
    fs::create_dir_all(home.join("bottles")).unwrap();
    fs::write(home.join("agents/a.md"), "hi").unwrap();
    let c = Catalog::discover(&home, dir.path());
    assert_eq!(c.agents["a"].1, Origin::Home);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}
