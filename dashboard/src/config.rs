//! Which control servers the dashboard watches: `tcp:HOST:PORT`, `HOST:PORT`, `unix:PATH` or
//! a socket path, each with an optional token from the environment or a file.

use std::fmt;
use std::path::PathBuf;

/// Where a control server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// A Unix socket's path.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp:{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// One control server to watch, and the token it needs (if any).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// The control server's token: the dashboard uses it to read, and asks the page's user for
    /// it before every action.
    pub token: Option<String>,
}

impl fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("ServerSpec")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A server argument that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Neither a socket path nor `host:port`.
    #[error(
        "`{0}` is not a control server: give tcp:HOST:PORT, HOST:PORT, unix:PATH or a socket \
         path, optionally followed by ,token-env=VAR or ,token-file=PATH"
    )]
    Unrecognised(String),
    /// A TCP address without a usable port.
    #[error("`{0}` has no port: give HOST:PORT, e.g. 127.0.0.1:9999")]
    NoPort(String),
    /// An option after the address that is not known.
    #[error("unknown option `{0}` after the server: use token-env=VAR or token-file=PATH")]
    UnknownOption(String),
    /// The token's environment variable is not set.
    #[error("the environment variable `{0}` (token-env) is not set or not UTF-8")]
    NoTokenVar(String),
    /// The token file could not be read.
    #[error("cannot read the token file `{path}`: {reason}")]
    TokenFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The token is empty.
    #[error("the token for `{0}` is empty")]
    EmptyToken(String),
}

impl ServerSpec {
    /// Parses one server argument; `default_token` (from `--token`) applies when the argument
    /// names no token of its own.
    pub fn parse(arg: &str, default_token: Option<&str>) -> Result<Self, SpecError> {
        let mut parts = arg.split(',');
        let addr = parts.next().unwrap_or_default().trim();
        let endpoint = parse_endpoint(addr)?;
        let mut token = default_token.map(str::to_owned);
        for option in parts {
            token = Some(match option.split_once('=') {
                Some(("token-env", var)) => std::env::var(var)
                    .map_err(|_| SpecError::NoTokenVar(var.to_owned()))?
                    .trim()
                    .to_owned(),
                Some(("token-file", path)) => std::fs::read_to_string(path)
                    .map_err(|e| SpecError::TokenFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?
                    .trim()
                    .to_owned(),
                _ => return Err(SpecError::UnknownOption(option.to_owned())),
            });
        }
        if token.as_deref() == Some("") {
            return Err(SpecError::EmptyToken(addr.to_owned()));
        }
        Ok(Self { endpoint, token })
    }
}

fn parse_endpoint(addr: &str) -> Result<Endpoint, SpecError> {
    if let Some(path) = addr.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(SpecError::Unrecognised(addr.to_owned()));
        }
        return Ok(Endpoint::Unix(path.into()));
    }
    if addr.starts_with('/') || addr.starts_with("./") {
        return Ok(Endpoint::Unix(addr.into()));
    }
    let hostport = addr.strip_prefix("tcp:").unwrap_or(addr);
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(if addr.starts_with("tcp:") {
            SpecError::NoPort(addr.to_owned())
        } else {
            SpecError::Unrecognised(addr.to_owned())
        });
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(SpecError::NoPort(addr.to_owned()));
    }
    Ok(Endpoint::Tcp(hostport.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_arguments() {
        let tcp = ServerSpec::parse("127.0.0.1:9999", None).unwrap();
        assert_eq!(tcp.endpoint, Endpoint::Tcp("127.0.0.1:9999".into()));
        assert_eq!(tcp.token, None);
        let tcp = ServerSpec::parse("tcp:[::1]:9", Some("t")).unwrap();
        assert_eq!(tcp.endpoint, Endpoint::Tcp("[::1]:9".into()));
        assert_eq!(tcp.token.as_deref(), Some("t"));
        let unix = ServerSpec::parse("unix:/run/a.sock", None).unwrap();
        assert_eq!(unix.endpoint, Endpoint::Unix("/run/a.sock".into()));
        assert_eq!(
            ServerSpec::parse("/run/b.sock", None).unwrap().endpoint,
            Endpoint::Unix("/run/b.sock".into())
        );
        assert_eq!(
            ServerSpec::parse("localhost", None),
            Err(SpecError::Unrecognised("localhost".into()))
        );
        assert_eq!(
            ServerSpec::parse("tcp:localhost:http", None),
            Err(SpecError::NoPort("tcp:localhost:http".into()))
        );
        assert_eq!(
            ServerSpec::parse("h:1,token=x", None),
            Err(SpecError::UnknownOption("token=x".into()))
        );
    }

    #[test]
    fn tokens_come_from_files_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("tpd-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let spec = ServerSpec::parse(&format!("h:1,token-file={}", file.display()), None).unwrap();
        assert_eq!(spec.token.as_deref(), Some("s3cret"));
        assert!(!format!("{spec:?}").contains("s3cret"), "never printed");
        assert!(matches!(
            ServerSpec::parse("h:1,token-env=TPD_SURELY_UNSET_VAR", None),
            Err(SpecError::NoTokenVar(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
