//! The data file: a dump streamed through zstd and hashed with BLAKE3 on its way to disk, and read
//! back the same way. Memory stays flat whatever the dump's size: a buffer of [`CHUNK`] bytes and
//! zstd's window. Everything here blocks; callers run it on a blocking thread.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::manifest::Encryption;

/// Bytes read from the dump per step.
const CHUNK: usize = 256 * 1024;
/// Bytes per zstd job: the unit compressed on the worker thread.
const JOB_SIZE: u32 = 2 * 1024 * 1024;
/// Progress is reported at most once per this many dump bytes.
const REPORT_EVERY: u64 = 4 * 1024 * 1024;

/// How a dump is written: its zstd level, the age recipients it is encrypted to (none: not
/// encrypted), and who is told the dump bytes read so far.
#[derive(Clone)]
pub struct Sealing {
    /// zstd level.
    pub level: i32,
    /// age recipients; empty, the file is not encrypted.
    pub recipients: Arc<[age::x25519::Recipient]>,
    /// Told the dump bytes read so far, now and then.
    pub progress: Arc<dyn Fn(u64) + Send + Sync>,
}

impl Sealing {
    /// What the manifest says of the encryption.
    pub fn encryption(&self) -> Option<Encryption> {
        (!self.recipients.is_empty())
            .then(|| Encryption { scheme: "age".into(), recipients: self.recipients.iter().map(ToString::to_string).collect() })
    }
}

/// Identities that decrypt backups (from an age identity file).
pub type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// What [`seal`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Bytes of dump read.
    pub dump_bytes: u64,
    /// Bytes written to the file.
    pub stored_bytes: u64,
    /// BLAKE3 of the written bytes, lower-case hex.
    pub checksum: String,
}

/// Compresses everything `dump` yields into `target` (dump → zstd → age → BLAKE3 → file), and
/// syncs the file.
///
/// # Errors
/// A read, write or sync error; `target` then holds a partial file for the caller to remove.
pub fn seal(dump: &mut dyn Read, target: File, sealing: &Sealing) -> io::Result<Sealed> {
    let mut sealer = Sealer::new(target, sealing)?;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = match dump.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        sealer.write_all(&buffer[..read])?;
    }
    sealer.finish()
}

/// A writer that seals what is written into a file, for producers that write (a tar builder)
/// rather than being read from: [`seal`] is one reading into it.
pub struct Sealer {
    encoder: zstd::Encoder<'static, Sink<Hashing<BufWriter<File>>>>,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
    written: u64,
    reported: u64,
}

impl Sealer {
    /// Seals into `target`.
    ///
    /// # Errors
    /// When the encryption or compression cannot be set up.
    pub fn new(target: File, sealing: &Sealing) -> io::Result<Self> {
        let hashing = Hashing::new(BufWriter::with_capacity(CHUNK, target));
        let sink = if sealing.recipients.is_empty() {
            Sink::Plain(hashing)
        } else {
            let recipients = sealing.recipients.iter().map(|r| r as &dyn age::Recipient);
            let encryptor = age::Encryptor::with_recipients(recipients).map_err(io::Error::other)?;
            Sink::Age(encryptor.wrap_output(hashing)?)
        };
        let mut encoder = zstd::Encoder::new(sink, sealing.level)?;
        // One worker: compression runs beside this thread's reading and hashing, as the zstd program
        // overlaps its own I/O; on two cores more workers only fight the dump program.
        encoder.multithread(1)?;
        // Small jobs keep its buffers (a few jobs in flight) to a few MiB.
        encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(JOB_SIZE))?;
        Ok(Self { encoder, progress: sealing.progress.clone(), written: 0, reported: 0 })
    }

    /// Finishes the streams and syncs the file.
    ///
    /// # Errors
    /// A write or sync error; the file is then partial, for the caller to remove.
    pub fn finish(self) -> io::Result<Sealed> {
        let (writer, stored_bytes, checksum) = self.encoder.finish()?.finish()?.finish();
        let file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        (self.progress)(self.written);
        Ok(Sealed { dump_bytes: self.written, stored_bytes, checksum })
    }
}

impl Write for Sealer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.encoder.write(buf)?;
        self.written += written as u64;
        if self.written - self.reported >= REPORT_EVERY {
            (self.progress)(self.written);
            self.reported = self.written;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Where zstd writes: the file, or an age stream to it (which must be finished, or the file
/// is cut short).
enum Sink<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sink<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Self::Plain(writer) => Ok(writer),
            Self::Age(stream) => stream.finish(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(writer) => writer.write(buf),
            Self::Age(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(writer) => writer.flush(),
            Self::Age(stream) => stream.flush(),
        }
    }
}

/// The BLAKE3 of the file at `path`, and its length.
///
/// # Errors
/// When it cannot be read.
pub fn checksum_of(path: &Path) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    let bytes = std::fs::metadata(path)?.len();
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

/// Why a data file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// It is encrypted and no identity was given.
    #[error(
        "it is encrypted to {recipients}: give an identity file that holds one of their keys (--identity FILE, or backup.identity_file)"
    )]
    NeedsIdentity {
        /// The recipients.
        recipients: String,
    },
    /// None of the identities decrypts it.
    #[error("none of the given age identities can decrypt it (it is encrypted to {recipients})")]
    WrongIdentity {
        /// The recipients.
        recipients: String,
    },
    /// Reading, decrypting or decompressing failed.
    #[error("its data file cannot be read back ({0}): it is truncated or corrupted")]
    Damaged(String),
}

/// Decompresses (and decrypts, with `identities`) the data file at `path` into `out`, hashing what
/// it reads; returns the checksum of the stored bytes and the bytes written. Compare the checksum
/// before using `out`: a flipped byte may decompress without complaint.
///
/// # Errors
/// [`UnsealError`].
pub fn unseal(
    path: &Path,
    encryption: Option<&Encryption>,
    identities: &Identities,
    out: &mut dyn Write,
) -> Result<(String, u64), UnsealError> {
    let damaged = |err: &dyn std::fmt::Display| UnsealError::Damaged(err.to_string());
    let mut hashing = Hashing::new(BufReader::with_capacity(CHUNK, File::open(path).map_err(|e| damaged(&e))?));
    let written = {
        let plain: Box<dyn Read + '_> = match encryption {
            None => Box::new(&mut hashing),
            Some(encryption) => {
                let recipients = encryption.recipients.join(", ");
                if identities.is_empty() {
                    return Err(UnsealError::NeedsIdentity { recipients });
                }
                let decryptor = age::Decryptor::new_buffered(&mut hashing).map_err(|e| damaged(&e))?;
                match decryptor.decrypt(identities.iter().map(|identity| identity.as_ref() as &dyn age::Identity)) {
                    Ok(reader) => Box::new(reader),
                    Err(age::DecryptError::NoMatchingKeys) => return Err(UnsealError::WrongIdentity { recipients }),
                    Err(err) => return Err(damaged(&err)),
                }
            }
        };
        let mut decoder = zstd::Decoder::new(plain).map_err(|e| damaged(&e))?;
        io::copy(&mut decoder, out).map_err(|e| damaged(&e))?
    };
    // Bytes after the end are part of the file too: hash them, or trailing garbage passes.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| damaged(&e))?;
    let (_, _, checksum) = hashing.finish();
    Ok((checksum, written))
}

/// Hashes and counts the bytes that pass through it, either way.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self { inner, hasher: blake3::Hasher::new(), bytes: 0 }
    }

    fn finish(self) -> (T, u64, String) {
        (self.inner, self.bytes, self.hasher.finalize().to_hex().to_string())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        self.bytes += read as u64;
        Ok(read)
    }
}

impl<R: io::BufRead> io::BufRead for Hashing<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffered) = self.inner.fill_buf() {
            let taken = amount.min(buffered.len());
            self.hasher.update(&buffered[..taken]);
            self.bytes += taken as u64;
        }
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Sealing {
        Sealing { level: 3, recipients: Arc::new([]), progress: Arc::new(|_| {}) }
    }

    #[test]
    fn what_is_sealed_unseals_with_the_same_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.zst");
        let dump: Vec<u8> = (0..3_000_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let sealed = seal(&mut dump.as_slice(), File::create(&path).unwrap(), &plain()).unwrap();
        assert_eq!(sealed.dump_bytes, dump.len() as u64);
        assert_eq!(checksum_of(&path).unwrap(), (sealed.checksum.clone(), sealed.stored_bytes));
        let mut out = Vec::new();
        let (checksum, written) = unseal(&path, None, &Vec::new(), &mut out).unwrap();
        assert_eq!((checksum, written), (sealed.checksum, dump.len() as u64));
        assert!(out == dump);
    }

    #[test]
    fn an_encrypted_file_opens_with_its_identity_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.zst.age");
        let key = age::x25519::Identity::generate();
        let sealing = Sealing { recipients: Arc::new([key.to_public()]), ..plain() };
        let dump = b"tenant rows ".repeat(10_000);
        let sealed = seal(&mut dump.as_slice(), File::create(&path).unwrap(), &sealing).unwrap();
        assert!(!std::fs::read(&path).unwrap().windows(12).any(|w| w == b"tenant rows "), "the plain text is in the file");
        let encryption = sealing.encryption();
        let mut out = Vec::new();
        let identities: Identities = vec![Box::new(key)];
        assert_eq!(unseal(&path, encryption.as_ref(), &identities, &mut out).unwrap().0, sealed.checksum);
        assert!(out == dump);
        let stranger: Identities = vec![Box::new(age::x25519::Identity::generate())];
        assert!(matches!(unseal(&path, encryption.as_ref(), &stranger, &mut Vec::new()), Err(UnsealError::WrongIdentity { .. })));
        assert!(matches!(unseal(&path, encryption.as_ref(), &Vec::new(), &mut Vec::new()), Err(UnsealError::NeedsIdentity { .. })));
    }

    #[test]
    fn a_flipped_byte_or_trailing_bytes_never_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.zst");
        let sealed = seal(&mut &b"hello, tenant"[..], File::create(&path).unwrap(), &plain()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let read = unseal(&path, None, &Vec::new(), &mut Vec::new());
        assert!(read.is_err() || read.unwrap().0 != sealed.checksum);
        bytes.extend_from_slice(b"trailing");
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let read = unseal(&path, None, &Vec::new(), &mut Vec::new());
        assert!(read.is_err() || read.unwrap().0 != sealed.checksum, "trailing bytes must not pass");
    }
}
