//! The data file: a dump streamed through zstd and hashed with BLAKE3 on its way to disk, and read
//! back the same way. Memory stays flat whatever the dump's size: a buffer of [`CHUNK`] bytes and
//! zstd's window. Everything here blocks; callers run it on a blocking thread.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Bytes read from the dump per step.
const CHUNK: usize = 256 * 1024;
/// Progress is reported at most once per this many dump bytes.
const REPORT_EVERY: u64 = 4 * 1024 * 1024;

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

/// Compresses everything `dump` yields into `target` at zstd `level`, hashing what is stored, and
/// syncs the file. `progress` is told the dump bytes read so far, now and then.
///
/// # Errors
/// A read, write or sync error; `target` then holds a partial file for the caller to remove.
pub fn seal(dump: &mut dyn Read, target: File, level: i32, progress: &dyn Fn(u64)) -> io::Result<Sealed> {
    let hashing = Hashing::new(BufWriter::with_capacity(CHUNK, target));
    let mut encoder = zstd::Encoder::new(hashing, level)?;
    let mut buffer = vec![0u8; CHUNK];
    let mut dump_bytes = 0u64;
    let mut reported = 0u64;
    loop {
        let read = match dump.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        encoder.write_all(&buffer[..read])?;
        dump_bytes += read as u64;
        if dump_bytes - reported >= REPORT_EVERY {
            progress(dump_bytes);
            reported = dump_bytes;
        }
    }
    let hashing = encoder.finish()?;
    let (writer, stored_bytes, checksum) = hashing.finish();
    let file = writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    progress(dump_bytes);
    Ok(Sealed { dump_bytes, stored_bytes, checksum })
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

/// Decompresses the data file at `path` into `out`, hashing what it reads, and returns the
/// checksum of the stored bytes and the bytes written. Compare the checksum before using `out`:
/// a flipped byte may decompress without complaint.
///
/// # Errors
/// A read or write error, or data zstd cannot decode (a truncated or corrupted file).
pub fn unseal(path: &Path, out: &mut dyn Write) -> io::Result<(String, u64)> {
    let mut hashing = Hashing::new(BufReader::with_capacity(CHUNK, File::open(path)?));
    let mut decoder = zstd::Decoder::with_buffer(&mut hashing)?;
    let written = io::copy(&mut decoder, out)?;
    drop(decoder);
    // Bytes after the zstd frame are part of the file too: hash them, or trailing garbage passes.
    io::copy(&mut hashing, &mut io::sink())?;
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

    #[test]
    fn what_is_sealed_unseals_with_the_same_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.zst");
        let dump: Vec<u8> = (0..3_000_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let sealed = seal(&mut dump.as_slice(), File::create(&path).unwrap(), 3, &|_| {}).unwrap();
        assert_eq!(sealed.dump_bytes, dump.len() as u64);
        assert_eq!(checksum_of(&path).unwrap(), (sealed.checksum.clone(), sealed.stored_bytes));
        let mut out = Vec::new();
        let (checksum, written) = unseal(&path, &mut out).unwrap();
        assert_eq!((checksum, written), (sealed.checksum, dump.len() as u64));
        assert!(out == dump);
    }

    #[test]
    fn a_flipped_byte_changes_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.zst");
        let sealed = seal(&mut &b"hello, tenant"[..], File::create(&path).unwrap(), 3, &|_| {}).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let read = unseal(&path, &mut Vec::new());
        assert!(read.is_err() || read.unwrap().0 != sealed.checksum);
        bytes.extend_from_slice(b"trailing");
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let read = unseal(&path, &mut Vec::new());
        assert!(read.is_err() || read.unwrap().0 != sealed.checksum, "trailing bytes must not pass");
    }
}
