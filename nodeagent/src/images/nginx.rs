//! The official nginx image's files, for the node's own nginx.
//!
//! `docker run nginx` does not run nginx as a Linux distribution configures
//! it. The image ships its own `/etc/nginx/nginx.conf` that loads every
//! `conf.d/*.conf`, a `conf.d/default.conf` serving the "Welcome to nginx!"
//! page from `/usr/share/nginx/html`, and logs that are symlinks to the
//! container's stdout and stderr (so `kubectl logs` shows them). Lessons
//! depend on that shape: mounting a ConfigMap at `/etc/nginx/conf.d`
//! replaces the default server, and nothing else.
//!
//! Debian's nginx has another shape (`sites-enabled/`, modules, logs in
//! files, temp files under /var/lib/nginx owned by the node). So for each
//! Pod the runtime writes the official layout into a private directory
//! ([`nginx_layout`]) and bind-mounts it over the node's directories in the
//! Pod's mount namespace: the node's nginx binary then sees exactly what it
//! would see inside the image. Two deliberate differences, both so that
//! Pods on one node never share files: the pid file and nginx's temp
//! directories live under `/tmp`, which is private to each Pod.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::BindMount;

/// Where Debian's nginx package keeps its MIME table, copied into every
/// layout (the image has the same file).
pub const NODE_MIME_TYPES: &str = "/etc/nginx/mime.types";

/// The layout's subdirectories and where each appears in the Pod.
const ETC_DIR: &str = "etc-nginx";
const HTML_DIR: &str = "html";
const LOG_DIR: &str = "log";
const ETC_TARGET: &str = "/etc/nginx";
const HTML_TARGET: &str = "/usr/share/nginx/html";
const LOG_TARGET: &str = "/var/log/nginx";

/// The official image's `nginx.conf`, with the pid file and temp paths
/// under the Pod's private /tmp, and one worker instead of one per CPU
/// (`auto`): a lab runs many nginx Pods on a small machine, and one
/// worker serves a lesson's traffic easily. `user www-data` is Debian's
/// nginx user (the image has a user `nginx`, Debian has none).
pub const NGINX_CONF: &str = r#"user  www-data;
worker_processes  1;

error_log  /var/log/nginx/error.log notice;
pid        /tmp/nginx.pid;


events {
    worker_connections  1024;
}


http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    #tcp_nopush     on;

    keepalive_timeout  65;

    #gzip  on;

    # Private to the Pod: Debian's defaults are under /var/lib/nginx, shared
    # by every nginx on the node.
    client_body_temp_path  /tmp/client_temp;
    proxy_temp_path        /tmp/proxy_temp;
    fastcgi_temp_path      /tmp/fastcgi_temp;
    uwsgi_temp_path        /tmp/uwsgi_temp;
    scgi_temp_path         /tmp/scgi_temp;

    include /etc/nginx/conf.d/*.conf;
}
"#;

/// The official image's `conf.d/default.conf` (without the IPv6 `listen`
/// line its entrypoint script adds when the container has IPv6).
pub const DEFAULT_CONF: &str = include_str!("../../../e2e/images/nginx/default.conf");

/// The official image's `index.html`.
pub const INDEX_HTML: &str = include_str!("../../../e2e/images/nginx/index.html");

/// The official image's `50x.html`.
pub const ERROR_HTML: &str = include_str!("../../../e2e/images/nginx/50x.html");

/// Writes the official nginx image's layout under `dir` and returns the
/// bind mounts that put it in place, in the order they must be made:
///
/// - `dir/etc-nginx` over `/etc/nginx`: `nginx.conf`, `mime.types`,
///   `conf.d/default.conf`;
/// - `dir/html` over `/usr/share/nginx/html`: `index.html`, `50x.html`;
/// - `dir/log` over `/var/log/nginx`: `access.log -> /dev/stdout`,
///   `error.log -> /dev/stderr`.
///
/// Writing again over an existing layout replaces it. Files are made
/// world-readable whatever the umask: nginx's workers run as `www-data`.
pub fn nginx_layout(dir: &Path) -> io::Result<Vec<BindMount>> {
    let etc = dir.join(ETC_DIR);
    let html = dir.join(HTML_DIR);
    let log = dir.join(LOG_DIR);
    for d in [&etc, &etc.join("conf.d"), &html, &log] {
        make_dir(d)?;
    }
    write_file(&etc.join("nginx.conf"), NGINX_CONF)?;
    write_file(&etc.join("conf.d/default.conf"), DEFAULT_CONF)?;
    let mime_types = fs::read_to_string(NODE_MIME_TYPES).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "reading {NODE_MIME_TYPES} for the nginx image (is nginx installed on the node? \
                 Debian package nginx-light): {e}"
            ),
        )
    })?;
    write_file(&etc.join("mime.types"), &mime_types)?;
    write_file(&html.join("index.html"), INDEX_HTML)?;
    write_file(&html.join("50x.html"), ERROR_HTML)?;
    // As in the image: nginx writes its logs to the container's output.
    symlink(Path::new("/dev/stdout"), &log.join("access.log"))?;
    symlink(Path::new("/dev/stderr"), &log.join("error.log"))?;
    Ok([(etc, ETC_TARGET), (html, HTML_TARGET), (log, LOG_TARGET)]
        .into_iter()
        .map(|(source, target)| BindMount {
            source,
            target: PathBuf::from(target),
        })
        .collect())
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn make_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path).map_err(with_path(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(with_path(path))
}

fn write_file(path: &Path, content: &str) -> io::Result<()> {
    fs::write(path, content).map_err(with_path(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(with_path(path))
}

fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    match fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(link)(e)),
    }
    std::os::unix::fs::symlink(target, link).map_err(with_path(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_has_the_official_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = nginx_layout(tmp.path()).unwrap();
        let targets: Vec<_> = mounts.iter().map(|m| m.target.clone()).collect();
        assert_eq!(
            targets,
            [
                PathBuf::from("/etc/nginx"),
                "/usr/share/nginx/html".into(),
                "/var/log/nginx".into()
            ]
        );
        let etc = &mounts[0].source;
        let conf = fs::read_to_string(etc.join("nginx.conf")).unwrap();
        assert!(conf.contains("include /etc/nginx/conf.d/*.conf;"));
        assert!(!conf.contains("sites-enabled"));
        assert!(fs::read_to_string(etc.join("mime.types"))
            .unwrap()
            .contains("text/html"));
        assert!(fs::read_to_string(etc.join("conf.d/default.conf"))
            .unwrap()
            .contains("root   /usr/share/nginx/html;"));
        assert!(fs::read_to_string(mounts[1].source.join("index.html"))
            .unwrap()
            .contains("<h1>Welcome to nginx!</h1>"));
        let log = &mounts[2].source;
        assert_eq!(
            fs::read_link(log.join("access.log")).unwrap(),
            Path::new("/dev/stdout")
        );
        assert_eq!(
            fs::read_link(log.join("error.log")).unwrap(),
            Path::new("/dev/stderr")
        );
        // Twice is fine: a restarted Pod gets the same layout.
        assert_eq!(nginx_layout(tmp.path()).unwrap(), mounts);
    }
}
