//! The faults `toystore-lab verify` injects, behind one interface modelled on etcd's
//! robustness failpoints (name, available, inject, heal).
//!
//! A nemesis here decides; it does not act. Given the cluster as observed (which replica
//! leads) and the round's pick, [`Nemesis::inject`] says what to hit and which
//! `cluster/hosts.sh` command hits it; [`Nemesis::heal`] says which command undoes it. The
//! verification engine ([`super::verify`]) runs those commands, as Jepsen's nemeses shell out
//! to iptables: kill -9, SIGSTOP and nft rules stay where the network namespaces are made, in
//! `cluster/hosts.sh`, the operator's tool for the same hosts. That keeps every decision here
//! testable without root, and one way to cut a link or kill a service.

use std::fmt;
use std::time::Duration;

/// A replica of the order service, as `cluster/hosts.sh` names it (`node1` … `node3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Replica(pub u8);

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// The cluster as the engine saw it just before a fault: the Raft leader and the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub leader: Replica,
    pub term: u64,
    /// The other replicas, in id order.
    pub followers: Vec<Replica>,
}

impl Observed {
    /// The cluster of `replicas` led by `leader` at `term`.
    pub fn new(leader: Replica, term: u64, replicas: &[Replica]) -> Self {
        let followers = replicas.iter().copied().filter(|r| *r != leader).collect();
        Self {
            leader,
            term,
            followers,
        }
    }

    /// The follower `pick` chooses (the schedule's number for the round), or the leader when
    /// there is no follower.
    fn follower(&self, pick: u32) -> Replica {
        if self.followers.is_empty() {
            return self.leader;
        }
        self.followers[pick as usize % self.followers.len()]
    }
}

/// One `cluster/hosts.sh` command line (its arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostsCommand(pub Vec<String>);

impl HostsCommand {
    fn of(words: &[&str]) -> Self {
        Self(words.iter().map(|w| (*w).to_owned()).collect())
    }
}

impl fmt::Display for HostsCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// What a nemesis decided to do in one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// What it hits, as `nemesis.jsonl` records it (`node2`, `node1->node3`, `frontend`).
    pub target: String,
    /// The command that injects the fault.
    pub command: HostsCommand,
    /// What the heal must bring back, in the words of `hosts.sh` (`node2`, `replicas`,
    /// `catalog`); none when the heal is the same whatever was hit.
    heal_subject: Option<String>,
}

impl Injection {
    /// `hosts.sh VERB SUBJECT`: the heal of a fault that hit one subject.
    fn heal_with(&self, verb: &str) -> HostsCommand {
        let words = std::iter::once(verb.to_owned()).chain(self.heal_subject.iter().cloned());
        HostsCommand(words.collect())
    }
}

/// What this host offers, for [`Nemesis::available`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// Running as root: network namespaces, nft and signals to their processes need it.
    pub root: bool,
    /// `nft` is on the PATH (partitions are nft rules).
    pub nft: bool,
}

/// One kind of fault.
pub trait Nemesis: Send + Sync {
    /// Its name in `--faults`, `nemesis.jsonl` and the checker's report.
    fn name(&self) -> &'static str;
    /// Whether it can run on this host; the error says what is missing.
    fn available(&self, host: HostFacts) -> Result<(), String> {
        if host.root {
            Ok(())
        } else {
            Err(format!(
                "{} needs root (the store runs in network namespaces)",
                self.name()
            ))
        }
    }
    /// The fault against the cluster as observed, `pick` choosing among possible targets.
    fn inject(&self, cluster: &Observed, pick: u32) -> Injection;
    /// The command that undoes `injection`.
    fn heal(&self, injection: &Injection) -> HostsCommand;
    /// How long the fault lasts when the run asks for `fault`.
    fn duration(&self, fault: Duration) -> Duration {
        fault
    }
    /// How many times a round injects and heals it, one second apart.
    fn hits(&self) -> u32 {
        1
    }
}

/// Who a [`Kill`] hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Victim {
    Leader,
    Follower,
    AllReplicas,
    Catalog,
    Frontend,
}

/// kill -9 of a process (or of all three replicas at once); healed by starting it again on
/// its data.
#[derive(Clone, Copy, Debug)]
pub struct Kill(pub Victim);

impl Nemesis for Kill {
    fn name(&self) -> &'static str {
        match self.0 {
            Victim::Leader => "kill-leader",
            Victim::Follower => "kill-follower",
            Victim::AllReplicas => "kill-all-replicas",
            Victim::Catalog => "kill-catalog",
            Victim::Frontend => "kill-frontend",
        }
    }

    fn inject(&self, cluster: &Observed, pick: u32) -> Injection {
        let (target, subject) = match self.0 {
            Victim::Leader => (cluster.leader.to_string(), cluster.leader.to_string()),
            Victim::Follower => {
                let follower = cluster.follower(pick).to_string();
                (follower.clone(), follower)
            }
            Victim::AllReplicas => {
                let mut all = vec![cluster.leader];
                all.extend(&cluster.followers);
                all.sort();
                let names: Vec<String> = all.iter().map(Replica::to_string).collect();
                (names.join(","), "replicas".to_owned())
            }
            Victim::Catalog => ("catalog".to_owned(), "catalog".to_owned()),
            Victim::Frontend => ("frontend".to_owned(), "frontend".to_owned()),
        };
        Injection {
            target,
            command: HostsCommand::of(&["kill", &subject]),
            heal_subject: Some(subject),
        }
    }

    fn heal(&self, injection: &Injection) -> HostsCommand {
        injection.heal_with("restart")
    }
}

/// SIGSTOP of the leader for longer than an election timeout; healed with SIGCONT. It lasts
/// at least 2 s, so that the followers elect another leader while it sleeps.
#[derive(Clone, Copy, Debug)]
pub struct PauseLeader;

impl Nemesis for PauseLeader {
    fn name(&self) -> &'static str {
        "pause-leader"
    }

    fn inject(&self, cluster: &Observed, _pick: u32) -> Injection {
        let leader = cluster.leader.to_string();
        Injection {
            target: leader.clone(),
            command: HostsCommand::of(&["stop", &leader]),
            heal_subject: Some(leader),
        }
    }

    fn heal(&self, injection: &Injection) -> HostsCommand {
        injection.heal_with("cont")
    }

    fn duration(&self, fault: Duration) -> Duration {
        fault.max(Duration::from_secs(2))
    }
}

/// Which links a [`Partition`] cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The leader from both followers, both ways.
    IsolateLeader,
    /// One follower from the others: a minority of one.
    SplitFollower,
    /// Packets from the leader to one follower dropped; the other way still flows.
    OnewayLeader,
}

/// nft rules that drop packets between replicas (catalog and front-end are never cut);
/// healed by removing every rule.
#[derive(Clone, Copy, Debug)]
pub struct Partition(pub Cut);

impl Nemesis for Partition {
    fn name(&self) -> &'static str {
        match self.0 {
            Cut::IsolateLeader => "partition-leader",
            Cut::SplitFollower => "partition-follower",
            Cut::OnewayLeader => "oneway-leader",
        }
    }

    fn available(&self, host: HostFacts) -> Result<(), String> {
        if !host.root {
            return Err(format!(
                "{} needs root (nft rules in namespaces)",
                self.name()
            ));
        }
        if !host.nft {
            return Err(format!(
                "{} needs nft (Debian: apt-get install nftables)",
                self.name()
            ));
        }
        Ok(())
    }

    fn inject(&self, cluster: &Observed, pick: u32) -> Injection {
        let leader = cluster.leader.to_string();
        let (target, command) = match self.0 {
            Cut::IsolateLeader => (
                leader.clone(),
                HostsCommand::of(&["partition", "isolate", &leader]),
            ),
            Cut::SplitFollower => {
                let follower = cluster.follower(pick).to_string();
                (
                    follower.clone(),
                    HostsCommand::of(&["partition", "split", &follower]),
                )
            }
            Cut::OnewayLeader => {
                let follower = cluster.follower(pick).to_string();
                (
                    format!("{leader}->{follower}"),
                    HostsCommand::of(&["partition", "oneway", &leader, &follower]),
                )
            }
        };
        Injection {
            target,
            command,
            heal_subject: None,
        }
    }

    fn heal(&self, _injection: &Injection) -> HostsCommand {
        HostsCommand::of(&["heal"])
    }
}

/// kill -9 of the front-end and an immediate restart, three times 1 s apart: each new
/// front-end registers its cache lease with the catalog while the stock changes of the orders
/// the old one had in flight still commit (and push their invalidations).
#[derive(Clone, Copy, Debug)]
pub struct BounceFrontend;

impl Nemesis for BounceFrontend {
    fn name(&self) -> &'static str {
        "bounce-frontend"
    }

    fn inject(&self, cluster: &Observed, pick: u32) -> Injection {
        Kill(Victim::Frontend).inject(cluster, pick)
    }

    fn heal(&self, injection: &Injection) -> HostsCommand {
        injection.heal_with("restart")
    }

    fn duration(&self, _fault: Duration) -> Duration {
        Duration::ZERO
    }

    fn hits(&self) -> u32 {
        3
    }
}

/// Every nemesis, in the order `--help` and the docs list them.
pub fn all() -> Vec<Box<dyn Nemesis>> {
    vec![
        Box::new(Kill(Victim::Leader)),
        Box::new(Kill(Victim::Follower)),
        Box::new(Kill(Victim::AllReplicas)),
        Box::new(PauseLeader),
        Box::new(Partition(Cut::IsolateLeader)),
        Box::new(Partition(Cut::SplitFollower)),
        Box::new(Partition(Cut::OnewayLeader)),
        Box::new(Kill(Victim::Catalog)),
        Box::new(Kill(Victim::Frontend)),
        Box::new(BounceFrontend),
    ]
}

/// The nemesis called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Nemesis>> {
    all().into_iter().find(|nemesis| nemesis.name() == name)
}

/// The names of every nemesis.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|nemesis| nemesis.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICAS: [Replica; 3] = [Replica(1), Replica(2), Replica(3)];

    /// Node 2 leads; the followers are node1 and node3.
    fn led_by_2() -> Observed {
        Observed::new(Replica(2), 7, &REPLICAS)
    }

    /// (target, inject, heal) of `name` against [`led_by_2`] with `pick`.
    fn lines(name: &str, pick: u32) -> (String, String, String) {
        let nemesis = by_name(name).expect("a known nemesis");
        let injection = nemesis.inject(&led_by_2(), pick);
        let heal = nemesis.heal(&injection).to_string();
        (injection.target, injection.command.to_string(), heal)
    }

    fn expect(target: &str, inject: &str, heal: &str) -> (String, String, String) {
        (target.to_owned(), inject.to_owned(), heal.to_owned())
    }

    #[test]
    fn kills_hit_the_named_process_and_restart_it() {
        assert_eq!(
            lines("kill-leader", 0),
            expect("node2", "kill node2", "restart node2")
        );
        assert_eq!(
            lines("kill-follower", 0),
            expect("node1", "kill node1", "restart node1")
        );
        assert_eq!(
            lines("kill-follower", 1),
            expect("node3", "kill node3", "restart node3")
        );
        assert_eq!(
            lines("kill-all-replicas", 5),
            expect("node1,node2,node3", "kill replicas", "restart replicas")
        );
        assert_eq!(
            lines("kill-catalog", 3),
            expect("catalog", "kill catalog", "restart catalog")
        );
        assert_eq!(
            lines("kill-frontend", 3),
            expect("frontend", "kill frontend", "restart frontend")
        );
    }

    #[test]
    fn a_pause_stops_the_leader_and_continues_it_after_at_least_two_seconds() {
        assert_eq!(
            lines("pause-leader", 9),
            expect("node2", "stop node2", "cont node2")
        );
        let pause = PauseLeader;
        assert_eq!(
            pause.duration(Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            pause.duration(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn partitions_cut_the_observed_replicas_and_heal_removes_every_rule() {
        assert_eq!(
            lines("partition-leader", 1),
            expect("node2", "partition isolate node2", "heal")
        );
        assert_eq!(
            lines("partition-follower", 1),
            expect("node3", "partition split node3", "heal")
        );
        assert_eq!(
            lines("oneway-leader", 0),
            expect("node2->node1", "partition oneway node2 node1", "heal")
        );
    }

    #[test]
    fn the_pick_chooses_each_follower_and_never_the_leader() {
        for pick in 0..20 {
            let (target, _, _) = lines("partition-follower", pick);
            assert_ne!(target, "node2");
            assert_eq!(target, if pick % 2 == 0 { "node1" } else { "node3" });
        }
    }

    #[test]
    fn a_bounce_kills_and_restarts_the_frontend_three_times_without_waiting() {
        assert_eq!(
            lines("bounce-frontend", 0),
            expect("frontend", "kill frontend", "restart frontend")
        );
        assert_eq!(BounceFrontend.hits(), 3);
        assert_eq!(
            BounceFrontend.duration(Duration::from_secs(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn partitions_need_root_and_nft_and_the_rest_root() {
        let bare = HostFacts {
            root: true,
            nft: false,
        };
        let user = HostFacts {
            root: false,
            nft: true,
        };
        for nemesis in all() {
            let needs_nft =
                nemesis.name().contains("partition") || nemesis.name() == "oneway-leader";
            assert_eq!(
                nemesis.available(bare).is_ok(),
                !needs_nft,
                "{}",
                nemesis.name()
            );
            assert!(nemesis.available(user).is_err(), "{}", nemesis.name());
        }
    }

    #[test]
    fn every_name_is_distinct_and_found_again() {
        let names = names();
        assert_eq!(names.len(), 10);
        for name in &names {
            assert_eq!(by_name(name).map(|n| n.name()), Some(*name));
        }
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert!(by_name("kill-everything").is_none());
    }
}
