//! A bucket of its own on the test S3 server (moto, started by `.ci/services`), emptied and
//! removed when dropped. Its methods block on a thread of their own, so sync and async tests
//! alike can call them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use tenancy_core::bucket::{S3Config, Secret};

use crate::{S3_ADDR, service_available};

/// A test bucket.
pub struct TestBucket {
    /// Its name.
    pub name: String,
    client: Arc<dyn ObjectStore>,
}

impl TestBucket {
    /// Creates the bucket `name` (lower case, unique to the test); `None` when S3 tests are skipped.
    pub fn new(name: &str) -> Option<Self> {
        if !service_available("s3", S3_ADDR) {
            return None;
        }
        // moto accepts an unsigned request to create a bucket.
        let answer = request(&format!("PUT /{name} HTTP/1.1\r\nHost: {S3_ADDR}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {name}: {answer}");
        let client = Self::config_for(name, "").client().expect("a client of the test bucket");
        Some(Self { name: name.to_owned(), client })
    }

    fn config_for(name: &str, prefix: &str) -> S3Config {
        S3Config {
            prefix: prefix.into(),
            endpoint: Some(format!("http://{S3_ADDR}")),
            access_key_id: Some(Secret::new("test")),
            secret_access_key: Some(Secret::new("test")),
            ..S3Config::new(name)
        }
    }

    /// The bucket as configured with keys under `prefix`.
    pub fn config(&self, prefix: &str) -> S3Config {
        Self::config_for(&self.name, prefix)
    }

    /// `[{section}.s3]` for `tenancy.toml`, keys under `prefix`.
    pub fn toml(&self, section: &str, prefix: &str) -> String {
        format!(
            "\n[{section}.s3]\nbucket = \"{}\"\nprefix = \"{prefix}\"\nendpoint = \"http://{S3_ADDR}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.name
        )
    }

    /// Every key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let client = self.client.clone();
        blocking(async move { client.list(None).map_ok(|meta| meta.location.to_string()).try_collect().await.expect("a listing") })
    }

    /// Puts `bytes` at `key`.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let (client, key) = (self.client.clone(), key.to_owned());
        blocking(async move { client.put(&key.as_str().into(), bytes.into()).await.expect("a put") });
    }

    /// The object at `key`.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let (client, key) = (self.client.clone(), key.to_owned());
        blocking(async move { client.get(&key.as_str().into()).await.expect("a get").bytes().await.expect("its bytes").to_vec() })
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let client = self.client.clone();
        let keys = self.keys();
        blocking(async move {
            for key in keys {
                let _ = client.delete(&key.as_str().into()).await;
            }
        });
        if TcpStream::connect(S3_ADDR).is_ok() {
            let _ = request(&format!("DELETE /{} HTTP/1.1\r\nHost: {S3_ADDR}\r\nConnection: close\r\n\r\n", self.name));
        }
    }
}

/// Sends one raw HTTP request to the S3 server; returns the answer.
fn request(text: &str) -> String {
    let mut socket = TcpStream::connect(S3_ADDR).expect("the S3 server answers");
    socket.write_all(text.as_bytes()).expect("a request");
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer
}

/// Runs `work` to completion on a thread and runtime of its own.
fn blocking<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work))
        .join()
        .expect("the bucket request did not panic")
}
