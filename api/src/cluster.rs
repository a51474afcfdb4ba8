//! The order replicas: ids and base URLs, as `1=http://127.0.0.1:8201,2=…`.
//!
//! The same string is given to every order node (`--nodes`, the address book for Raft RPCs and
//! forwarding) and to the front-end (the candidates for replica selection), usually through
//! `TOYSTORE_NODES` in `cluster/cluster.env`. Hosts may be IP addresses or names (resolved when
//! a connection is made), so the same configuration runs with every replica on its own machine.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use reqwest::Url;

use crate::url::parse_base_url;

/// Order replica ids to base URLs, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeAddrs(BTreeMap<u64, Url>);

impl NodeAddrs {
    pub fn new(nodes: impl IntoIterator<Item = (u64, Url)>) -> Self {
        Self(nodes.into_iter().collect())
    }

    pub fn get(&self, id: u64) -> Option<&Url> {
        self.0.get(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Url)> {
        self.0.iter().map(|(id, url)| (*id, url))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `host:port` of a base URL (what Raft's membership records as a node's address).
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => url.as_str().to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeAddrsError {
    #[error("node entry {0:?} is not of the form ID=URL")]
    NotAPair(String),
    #[error("node id {0:?} is not a positive integer")]
    BadId(String),
    #[error("node {0}'s URL: {1}")]
    BadUrl(u64, String),
    #[error("node id {0} appears twice")]
    Duplicate(u64),
    #[error("no order nodes given")]
    Empty,
}

impl FromStr for NodeAddrs {
    type Err = NodeAddrsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nodes = BTreeMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, url) = entry
                .split_once('=')
                .ok_or_else(|| NodeAddrsError::NotAPair(entry.to_string()))?;
            let id: u64 = match id.trim().parse() {
                Ok(id) if id > 0 => id,
                _ => return Err(NodeAddrsError::BadId(id.to_string())),
            };
            let url = parse_base_url(url).map_err(|why| NodeAddrsError::BadUrl(id, why))?;
            if nodes.insert(id, url).is_some() {
                return Err(NodeAddrsError::Duplicate(id));
            }
        }
        if nodes.is_empty() {
            return Err(NodeAddrsError::Empty);
        }
        Ok(Self(nodes))
    }
}

impl fmt::Display for NodeAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self
            .iter()
            .map(|(id, url)| format!("{id}={}", url.as_str().trim_end_matches('/')))
            .collect();
        f.write_str(&pairs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_cluster() {
        let nodes: NodeAddrs = crate::defaults::ORDER_NODES.parse().unwrap();
        assert_eq!(nodes.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(
            nodes.get(2).map(Url::as_str),
            Some("http://127.0.0.1:8202/")
        );
        assert_eq!(nodes.to_string(), crate::defaults::ORDER_NODES);
        assert_eq!(authority(nodes.get(1).unwrap()), "127.0.0.1:8201");
    }

    #[test]
    fn host_names_are_addresses_too() {
        let nodes: NodeAddrs = "1=http://replica-1:8201,2=http://replica-2.lab:8201/"
            .parse()
            .unwrap();
        assert_eq!(authority(nodes.get(2).unwrap()), "replica-2.lab:8201");
        assert_eq!(
            nodes.to_string(),
            "1=http://replica-1:8201,2=http://replica-2.lab:8201"
        );
    }

    #[test]
    fn rejects_malformed_lists() {
        assert_eq!("".parse::<NodeAddrs>(), Err(NodeAddrsError::Empty));
        assert!(matches!(
            "1".parse::<NodeAddrs>(),
            Err(NodeAddrsError::NotAPair(_))
        ));
        assert!(matches!(
            "0=http://a:1".parse::<NodeAddrs>(),
            Err(NodeAddrsError::BadId(_))
        ));
        assert!(matches!(
            "1=ftp://a".parse::<NodeAddrs>(),
            Err(NodeAddrsError::BadUrl(1, _))
        ));
        assert_eq!(
            "1=http://a:1,1=http://b:2".parse::<NodeAddrs>(),
            Err(NodeAddrsError::Duplicate(1))
        );
    }
}
