//! S3-compatible buckets, configured alike wherever tenancy keeps things in one (tenants' files,
//! backups): [`S3Config`], and with the `s3` feature the client it makes ([`S3Config::client`]).

use serde::{Deserialize, Serialize};

/// A bucket on AWS or any S3-compatible server (`[files.s3]`, `[backup.s3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Keys begin with this (`tenancy/backups`); empty, at the bucket's root.
    #[serde(default)]
    pub prefix: String,
    /// The region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Another server's URL (MinIO, Ceph, Garage, moto); `http://` is allowed only here.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The access key; unset, `AWS_ACCESS_KEY_ID` (and the rest of the AWS environment).
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// The secret key; unset, `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// What is wrong with an [`S3Config`]: the key (under the section) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadS3Config {
    /// `bucket` or `endpoint`.
    pub key: &'static str,
    /// Why.
    pub message: String,
}

impl S3Config {
    /// A bucket with the defaults: no prefix, `us-east-1`, AWS's endpoint and credentials from
    /// the environment.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: String::new(),
            region: default_region(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    /// Checks what can be checked without asking the server.
    ///
    /// # Errors
    /// An empty bucket name, or an endpoint that is not an http(s) URL.
    pub fn check(&self) -> Result<(), BadS3Config> {
        if self.bucket.trim().is_empty() {
            return Err(BadS3Config { key: "bucket", message: "`bucket` must name a bucket".into() });
        }
        if let Some(endpoint) = &self.endpoint
            && !matches!(url::Url::parse(endpoint).map(|url| url.scheme().to_owned()).as_deref(), Ok("http" | "https"))
        {
            return Err(BadS3Config { key: "endpoint", message: format!("`{endpoint}` is not an http(s) URL") });
        }
        Ok(())
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_matches('/'))
    }

    /// A client of the bucket. Credentials come from the configuration, else from the standard
    /// `AWS_*` variables.
    ///
    /// # Errors
    /// When the configuration does not make a client (the client's words; never a credential).
    #[cfg(feature = "s3")]
    pub fn client(&self) -> Result<std::sync::Arc<dyn object_store::ObjectStore>, String> {
        use object_store::aws::AmazonS3Builder;
        // reqwest is built without a crypto provider of its own: rustls uses ring, process-wide.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket).with_region(&self.region);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key.expose());
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let client = builder.build().map_err(|err| err.to_string())?;
        Ok(std::sync::Arc::new(client))
    }

    /// The prefix as an object path.
    #[cfg(feature = "s3")]
    pub fn prefix_path(&self) -> object_store::path::Path {
        object_store::path::Path::from(self.prefix.as_str())
    }
}

/// A credential: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let s3 = S3Config {
            access_key_id: Some(Secret::new("AKIAEXAMPLE")),
            secret_access_key: Some(Secret::new("wJalrXUtnFEMI")),
            ..S3Config::new("b")
        };
        let shown = format!("{s3:?}");
        assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[test]
    fn a_bucket_needs_a_name_and_an_http_endpoint() {
        assert_eq!(S3Config::new(" ").check().unwrap_err().key, "bucket");
        let ftp = S3Config { endpoint: Some("ftp://x".into()), ..S3Config::new("b") };
        assert_eq!(ftp.check().unwrap_err().key, "endpoint");
        assert!(S3Config { endpoint: Some("http://127.0.0.1:5055".into()), ..S3Config::new("b") }.check().is_ok());
    }
}
