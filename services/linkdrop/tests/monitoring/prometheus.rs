//! A real Prometheus (Debian's, from `scripts/setup`) scrapes a running linkdrop and
//! evaluates every rule on what it scraped.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::{self, spawn_app};
use crate::{ROLES, monitoring, rules, scratch};

/// A Prometheus server (Debian's, from `scripts/setup`) scraping linkdrop under the job
/// `linkdrop` every second and evaluating the rules every second; killed when dropped.
struct Prometheus {
    url: String,
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let dir = scratch().join(format!("prometheus-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [monitoring().join("linkdrop-rules.yaml")],
            "scrape_configs": [{
                "job_name": "linkdrop",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [target]}],
            }],
        });
        std::fs::write(dir.join("prometheus.yaml"), config.to_string()).unwrap();
        let listen = format!("127.0.0.1:{}", support::processes::free_port());
        let mut child = tokio::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yaml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus runs (./scripts/setup installs it)");
        // Ready when it says so.
        let stderr = child.stderr.take().unwrap();
        let ready = async {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut said = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Server is ready to receive web requests") {
                    // Keep reading, so that it never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Ok(());
                }
                said.push(line);
            }
            Err(said.join("\n"))
        };
        match tokio::time::timeout(support::PATIENCE, ready).await {
            Ok(Ok(())) => {}
            Ok(Err(said)) => panic!("prometheus stopped:\n{said}"),
            Err(_) => panic!("prometheus did not get ready"),
        }
        Prometheus {
            url: format!("http://{listen}"),
            child,
            dir,
        }
    }

    async fn api(&self, path: &str) -> Value {
        let body: Value = reqwest::get(format!("{}/api/v1/{path}", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{path}: {body}");
        body["data"].clone()
    }

    /// Asks again (every 100 ms, within [`support::PATIENCE`]) until `done` holds for the
    /// answer to `path`; that answer. Prometheus scrapes and evaluates on its own clock and
    /// has no way to tell a client when it did, so its HTTP API is polled: the wait ends on
    /// the answer, never on the time slept.
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + support::PATIENCE;
        loop {
            let data = self.api(path).await;
            if done(&data) {
                return data;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus: {what} did not happen; {path}: {data}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last evaluation of every rule group.
fn evaluations(rules: &Value) -> Vec<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["lastEvaluation"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A real Prometheus scrapes a running linkdrop and evaluates every rule on what it
/// scraped: each evaluates without error, and on this healthy installation none is pending
/// or firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_linkdrop_and_evaluates_every_rule_without_alerting() {
    let app = spawn_app().await;
    let prometheus = Prometheus::start(&app.addr.to_string()).await;
    let ready = prometheus
        .until(
            "query?query=linkdrop_ready%7Bjob%3D%22linkdrop%22%7D%20%3D%3D%201",
            "a scrape of linkdrop, ready in every role",
            |data| {
                data["result"]
                    .as_array()
                    .is_some_and(|r| r.len() == ROLES.len())
            },
        )
        .await;
    let mut roles: Vec<&str> = ready["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|series| series["metric"]["role"].as_str().unwrap())
        .collect();
    roles.sort();
    let mut expected = ROLES;
    expected.sort();
    assert_eq!(roles, expected);

    // Every group evaluated again after that scrape.
    let before = evaluations(&prometheus.api("rules").await);
    let evaluated_rules = prometheus
        .until(
            "rules",
            "an evaluation of every group after the scrape",
            |data| {
                evaluations(data)
                    .iter()
                    .zip(&before)
                    .all(|(now, then)| now != then)
            },
        )
        .await;
    let mut evaluated = 0;
    let mut problems = Vec::new();
    for group in evaluated_rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            evaluated += 1;
            let name = rule["name"].as_str().unwrap();
            if rule["health"] != "ok" {
                problems.push(format!("{name}: {} {}", rule["health"], rule["lastError"]));
            }
            if rule["state"] != "inactive" {
                problems.push(format!("{name} is {}: {}", rule["state"], rule["alerts"]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(evaluated, rules().len());
}
