//! Snapshots as files, written and read as a stream: memory stays bounded however many orders
//! the state machine holds.
//!
//! A snapshot file is the state machine in a fixed order: a magic string, a [`Header`], every
//! order in number order, then every remembered abandonment in the order it was recorded. Each
//! record is one bincode value read with a size limit, so a corrupt or hostile file cannot make
//! the reader allocate more than one record's worth; counts in the header only bound loops.
//!
//! Files live in the replica's `snapshots/` directory: `building-*` and `receiving-*` while
//! being written, and `snap-*` once moved into place (current, or being installed).
//! [`SnapshotFile`] is openraft's `SnapshotData`: a tokio file that remembers its path, so an
//! install of a file this replica received can rename it instead of copying it.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

use super::records::{AbandonRecord, StoredOrder};

const MAGIC: &[u8; 8] = b"TOYSNAP1";

/// Largest single record (an order or an abandonment): request ids and names are short.
const RECORD_LIMIT: usize = 64 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_LIMIT>()
}

/// What a snapshot carries besides its records: the state machine's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Number of orders that follow (numbered 0..orders).
    pub orders: u64,
    /// Number of abandonment records that follow.
    pub abandons: u64,
    /// Digest chain over all orders (see `rules::chain_digest`).
    pub digest: [u8; 32],
    /// The state machine's clock: the latest leader timestamp it applied.
    pub clock_ms: u64,
    /// Orders below this number no longer have a request-id entry (retention).
    pub requests_forgotten_below: u64,
    /// Sequence number the next abandonment record gets.
    pub abandon_seq: u64,
}

/// Writes a snapshot file record by record.
pub struct SnapshotWriter {
    out: BufWriter<std::fs::File>,
    path: PathBuf,
}

impl SnapshotWriter {
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        let mut writer = Self {
            out,
            path: path.to_path_buf(),
        };
        writer.record(header)?;
        Ok(writer)
    }

    pub fn record<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        bincode::serde::encode_into_std_write(value, &mut self.out, config())
            .map(drop)
            .map_err(io::Error::other)
    }

    /// Flushes and fsyncs the file; returns its path.
    pub fn finish(self) -> io::Result<PathBuf> {
        let file = self.out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        Ok(self.path)
    }
}

/// Reads a snapshot file record by record.
pub struct SnapshotReader {
    input: BufReader<std::fs::File>,
    pub header: Header,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut input = BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(io::Error::other("not a toy store snapshot file"));
        }
        let header = decode(&mut input)?;
        Ok(Self { input, header })
    }

    pub fn order(&mut self) -> io::Result<StoredOrder> {
        decode(&mut self.input)
    }

    pub fn abandon(&mut self) -> io::Result<AbandonRecord> {
        decode(&mut self.input)
    }
}

fn decode<T: serde::de::DeserializeOwned>(input: &mut impl Read) -> io::Result<T> {
    bincode::serde::decode_from_std_read(input, config()).map_err(io::Error::other)
}

/// Makes a rename durable: fsyncs the directory that holds the renamed file.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// openraft's `SnapshotData`: a file and where it is.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    pub async fn open(path: PathBuf) -> io::Result<Self> {
        Ok(Self {
            file: tokio::fs::File::open(&path).await?,
            path,
        })
    }

    /// A file already opened (under the snapshot lock, so that it cannot vanish first).
    pub fn from_std(file: std::fs::File, path: PathBuf) -> Self {
        Self {
            file: tokio::fs::File::from_std(file),
            path,
        }
    }

    pub async fn create(path: PathBuf) -> io::Result<Self> {
        Ok(Self {
            file: tokio::fs::File::create(&path).await?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written through this handle durable.
    pub async fn sync(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}
