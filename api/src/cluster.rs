//! The order replicas: ids and base URLs, as `1=http://127.0.0.1:8201,2=…`.
//!
//! The same string is given to every order node (`--nodes`, the address book for Raft RPCs and
//! forwarding) and to the front-end (the candidates for leader selection), usually through
//! `TOYSTORE_NODES` in `cluster/cluster.env`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Order replica ids to base URLs (no trailing slash), ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeAddrs(BTreeMap<u64, String>);

impl NodeAddrs {
    pub fn new(nodes: impl IntoIterator<Item = (u64, String)>) -> Self {
        Self(
            nodes
                .into_iter()
                .map(|(id, url)| (id, url.trim_end_matches('/').to_string()))
                .collect(),
        )
    }

    pub fn get(&self, id: u64) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    /// Ids from the highest down: the order in which the front-end tries them.
    pub fn ids_descending(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().rev().copied()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &str)> {
        self.0.iter().map(|(id, url)| (*id, url.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeAddrsError {
    #[error("node entry {0:?} is not of the form ID=URL")]
    NotAPair(String),
    #[error("node id {0:?} is not a positive integer")]
    BadId(String),
    #[error("node {0}'s URL {1:?} must start with http://")]
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
            let url = url.trim().trim_end_matches('/');
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                return Err(NodeAddrsError::BadUrl(id, url.to_string()));
            }
            if nodes.insert(id, url.to_string()).is_some() {
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
        let pairs: Vec<String> = self.iter().map(|(id, url)| format!("{id}={url}")).collect();
        f.write_str(&pairs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_cluster() {
        let nodes: NodeAddrs = crate::defaults::ORDER_NODES.parse().unwrap();
        assert_eq!(nodes.ids_descending().collect::<Vec<_>>(), vec![3, 2, 1]);
        assert_eq!(nodes.get(2), Some("http://127.0.0.1:8202"));
        assert_eq!(nodes.to_string(), crate::defaults::ORDER_NODES);
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
