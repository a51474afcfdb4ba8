//! A 3-member etcd on this machine, for the comparison ([`super::compare`]): its members
//! listen on 127.0.0.1, clients at BASE+1..3 and peers at BASE+11..13, each in a process
//! group of its own, data in a temporary folder; [`Etcd`] stops them and deletes it when
//! dropped, however the benchmark ends (an error, an interrupt). Debian's defaults: the WAL
//! fsynced before a commit is acknowledged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use api::client::ServiceClient;

use super::Out;
use crate::lab::block_on;
use crate::lab::process::signal;

/// "order-0" in base64: the key the range runs read.
pub const RANGE_KEY: &str = "b3JkZXItMA==";
/// `{"name":"Tux","quantity":1}` in base64: its value.
const VALUE: &str = "eyJuYW1lIjoiVHV4IiwicXVhbnRpdHkiOjF9";

/// etcd's ports from a base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdPorts {
    base: u16,
}

impl EtcdPorts {
    /// The ports from `base`, if all of them fit below 65536 and none is one of the store's.
    pub fn new(base: u16, store_ports: &[u16]) -> anyhow::Result<Self> {
        if base == 0 || base > u16::MAX - 13 {
            bail!("TOYSTORE_ETCD_PORT_BASE must be a port number below 65522, not {base}");
        }
        let ports = Self { base };
        for port in ports.all() {
            if store_ports.contains(&port) {
                bail!(
                    "etcd's port {port} is one of the store's ({store_ports:?}): set TOYSTORE_ETCD_PORT_BASE"
                );
            }
        }
        Ok(ports)
    }

    pub fn client(self, member: u16) -> u16 {
        self.base + member
    }

    pub fn peer(self, member: u16) -> u16 {
        self.base + 10 + member
    }

    fn all(self) -> impl Iterator<Item = u16> {
        (1..=3).flat_map(move |member| [self.client(member), self.peer(member)])
    }

    pub fn client_url(self, member: u16) -> String {
        format!("http://127.0.0.1:{}", self.client(member))
    }

    fn peer_url(self, member: u16) -> String {
        format!("http://127.0.0.1:{}", self.peer(member))
    }

    /// Member `member`'s command line after `etcd`.
    pub fn member_args(self, member: u16, data: &Path, token: &str) -> Vec<String> {
        let cluster: Vec<String> = (1..=3)
            .map(|m| format!("member-{m}={}", self.peer_url(m)))
            .collect();
        let (client, peer) = (self.client_url(member), self.peer_url(member));
        [
            "--name",
            &format!("member-{member}"),
            "--data-dir",
            &data.join(format!("member-{member}")).display().to_string(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &cluster.join(","),
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            token,
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            "warn",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// What a member's `/v3/maintenance/status` says of Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub term: u64,
    pub leads: bool,
}

impl MemberStatus {
    /// From the JSON gateway's answer, whose 64-bit numbers are strings.
    pub fn parse(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let number = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            other => other.as_u64(),
        };
        let member = number(value.get("header")?.get("member_id")?)?;
        let leader = number(value.get("leader")?)?;
        Some(Self {
            term: number(value.get("raftTerm")?)?,
            leads: member == leader,
        })
    }
}

/// A running 3-member etcd; stopped, its data deleted, when dropped.
pub struct Etcd {
    pub ports: EtcdPorts,
    pub data: PathBuf,
    members: Vec<Child>,
    out: Out,
}

impl Etcd {
    /// Starts the members (logs in `logs/member-N.log`) and returns once a put commits.
    pub fn start(ports: EtcdPorts, logs: &Path, out: Out) -> anyhow::Result<Self> {
        for port in ports.all() {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                bail!("port {port} is in use: set TOYSTORE_ETCD_PORT_BASE to a free range");
            }
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let data =
            std::env::temp_dir().join(format!("toystore-etcd.{}.{nanos}", std::process::id()));
        std::fs::create_dir(&data).with_context(|| format!("cannot create {}", data.display()))?;
        std::fs::create_dir_all(logs)?;
        let mut etcd = Self {
            ports,
            data,
            members: Vec::new(),
            out,
        };
        let token = format!("toystore-bench-{}", std::process::id());
        for member in 1..=3 {
            let log_path = logs.join(format!("member-{member}.log"));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot write {}", log_path.display()))?;
            use std::os::unix::process::CommandExt as _;
            let child = Command::new("etcd")
                .args(ports.member_args(member, &etcd.data, &token))
                // A group of its own: a ^C at the terminal reaches the benchmark, which stops
                // etcd itself, in order.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("cannot start etcd")?;
            etcd.members.push(child);
        }
        let ready = block_on(etcd.first_put())?;
        if !ready {
            bail!(
                "etcd did not accept a put within 20 s (logs in {})",
                logs.display()
            );
        }
        Ok(etcd)
    }

    /// Puts the key the range runs read, retrying for up to 20 s while the members elect.
    async fn first_put(&self) -> bool {
        let http = ServiceClient::new(Duration::from_secs(1), None);
        let url = format!("{}/v3/kv/put", self.ports.client_url(1));
        let body = serde_json::json!({"key": RANGE_KEY, "value": VALUE});
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let put = http.post(&url).json(&body).send().await;
            if put.is_ok_and(|answer| answer.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Every member's status (`None`: it did not answer).
    pub fn statuses(&self) -> anyhow::Result<Vec<Option<MemberStatus>>> {
        block_on(async {
            let http = ServiceClient::new(Duration::from_secs(1), None);
            let mut all = Vec::new();
            for member in 1..=3 {
                let url = format!("{}/v3/maintenance/status", self.ports.client_url(member));
                let answer = http.post(&url).body("{}").send().await;
                let text = match answer {
                    Ok(answer) => answer.text().await.ok(),
                    Err(_) => None,
                };
                all.push(text.as_deref().and_then(MemberStatus::parse));
            }
            all
        })
    }

    /// The member that leads, waiting up to 5 s for an election.
    pub fn leader(&self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let statuses = self.statuses()?;
            if let Some(index) = statuses
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.leads))
            {
                return Ok(index as u16 + 1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("no etcd member reports itself leader")
    }

    /// Every member's term and role: a term that moves means an election under load.
    pub fn facts(&self, out: &Out) -> anyhow::Result<()> {
        for (index, status) in self.statuses()?.iter().enumerate() {
            let member = index + 1;
            out.line(match status {
                None => format!("  etcd member {member}: not answering"),
                Some(s) => format!(
                    "  etcd member {member}: term {}, {}",
                    s.term,
                    if s.leads { "leader" } else { "follower" }
                ),
            });
        }
        Ok(())
    }
}

impl Drop for Etcd {
    /// SIGTERM to every member's group, SIGKILL after 5 s, the data deleted; says whether
    /// anything was left.
    fn drop(&mut self) {
        let groups: Vec<u32> = self.members.iter().map(Child::id).collect();
        for group in &groups {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut left: Vec<&mut Child> = self.members.iter_mut().collect();
        while !left.is_empty() && Instant::now() < deadline {
            left.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(100));
        }
        for child in &mut left {
            signal(child.id(), "KILL");
            let _ = child.wait();
        }
        let kept = std::fs::remove_dir_all(&self.data).is_err() && self.data.exists();
        self.out.line(if kept {
            format!(
                "etcd: warning: {} could not be deleted",
                self.data.display()
            )
        } else {
            format!("etcd: 3 members stopped, {} deleted", self.data.display())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_stay_apart_from_the_stores_and_below_the_limit() {
        let ports = EtcdPorts::new(12370, &[8400, 8500, 8601]).unwrap();
        assert_eq!((ports.client(1), ports.client(3)), (12371, 12373));
        assert_eq!((ports.peer(1), ports.peer(3)), (12381, 12383));
        let clash = EtcdPorts::new(8590, &[8400, 8500, 8601]).unwrap_err();
        assert!(clash.to_string().contains("etcd's port 8601"), "{clash}");
        assert!(EtcdPorts::new(65530, &[]).is_err());
        assert!(EtcdPorts::new(0, &[]).is_err());
    }

    #[test]
    fn a_member_knows_the_whole_cluster_and_listens_on_its_own_ports() {
        let ports = EtcdPorts::new(100, &[]).unwrap();
        let args = ports.member_args(2, Path::new("/tmp/e"), "t").join(" ");
        assert!(
            args.starts_with("--name member-2 --data-dir /tmp/e/member-2 "),
            "{args}"
        );
        assert!(
            args.contains("--listen-client-urls http://127.0.0.1:102 "),
            "{args}"
        );
        assert!(
            args.contains("--listen-peer-urls http://127.0.0.1:112 "),
            "{args}"
        );
        assert!(
            args.contains("--initial-cluster member-1=http://127.0.0.1:111,member-2=http://127.0.0.1:112,member-3=http://127.0.0.1:113 "),
            "{args}"
        );
        assert!(args.contains("--initial-cluster-token t "), "{args}");
    }

    #[test]
    fn a_member_leads_when_the_leader_it_names_is_itself() {
        // etcd 3.4's JSON gateway: 64-bit numbers as strings.
        let leader = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"1","raft_term":"2"},"version":"3.4.30","dbSize":"20480","leader":"10276657743932975437","raftIndex":"4","raftTerm":"2"}"#;
        assert_eq!(
            MemberStatus::parse(leader),
            Some(MemberStatus {
                term: 2,
                leads: true
            })
        );
        let follower = leader.replacen(
            "\"member_id\":\"10276657743932975437\"",
            "\"member_id\":\"1\"",
            1,
        );
        assert_eq!(
            MemberStatus::parse(&follower),
            Some(MemberStatus {
                term: 2,
                leads: false
            })
        );
        assert_eq!(MemberStatus::parse("{}"), None);
        assert_eq!(MemberStatus::parse("not json"), None);
    }
}
