//! The TLS of the compose files with the override merged: every `.pem` is
//! mounted and made by `docker/make-certs.sh`, whoever serves TLS is
//! dialled with `https://`, and each certificate names its host.

use std::collections::BTreeMap;

use super::{
    CERTS, Deployment,
    services::{Service, without_scheme},
};
use crate::deploy::{binaries::Parsed, envoy::Envoy};

/// The certificates `docker/make-certs.sh` writes, by file name, each with
/// the host names and addresses it is for (none for keys and the CA).
pub(crate) fn certificates(make_certs: &str) -> BTreeMap<String, Vec<String>> {
    let mut files = BTreeMap::from([("ca.pem".to_owned(), Vec::new())]);
    for line in make_certs.lines() {
        // `issue NAME "DNS:a,IP:b"`
        let Some(rest) = line.trim().strip_prefix("issue ") else {
            continue;
        };
        let Some((name, names)) = rest.split_once(' ') else {
            continue;
        };
        let names = names
            .trim_matches('"')
            .split(',')
            .filter_map(|n| n.split_once(':').map(|(_, n)| n.to_owned()))
            .collect();
        files.insert(format!("{name}.pem"), names);
        files.insert(format!("{name}-key.pem"), Vec::new());
    }
    files
}

/// The file of `make-certs.sh` that `path`, in `service`'s container, is:
/// `path` must be under a mount of ./certs, and a file the script writes.
pub(crate) fn certificate_file(
    service: &Service,
    path: &str,
    certs: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<String>,
) -> Option<String> {
    let name = &service.name;
    let file = service.volumes.iter().find_map(|volume| {
        let mut parts = volume.split(':');
        if parts.next() != Some(CERTS) {
            return None;
        }
        let target = parts.next()?.trim_end_matches('/');
        path.strip_prefix(&format!("{target}/"))
    });
    let Some(file) = file else {
        problems.push(format!(
            "{name}: reads {path}, which is in no mount of {CERTS}"
        ));
        return None;
    };
    if !certs.contains_key(file) {
        problems.push(format!(
            "{name}: reads {path}, but docker/make-certs.sh writes no {file} (it writes {:?})",
            certs.keys().collect::<Vec<_>>()
        ));
        return None;
    }
    Some(file.to_owned())
}

/// TLS fits together across the services: see the module's documentation.
pub(crate) fn check_tls(
    services: &BTreeMap<String, Service>,
    servers: &BTreeMap<&str, Parsed>,
    envoy: Option<&(String, Envoy)>,
    deployment: &Deployment,
    problems: &mut Vec<String>,
) {
    let certs = certificates(deployment.file("docker/make-certs.sh"));
    let names_of = |file: &Option<String>| -> Vec<String> {
        file.as_ref()
            .and_then(|f| certs.get(f))
            .cloned()
            .unwrap_or_default()
    };
    // Every .pem anyone reads is in its mount, and a file the script writes.
    for service in services.values() {
        let mut paths: Vec<String> = service
            .environment
            .iter()
            .filter_map(|var| var.value.clone())
            .chain(service.healthcheck.iter().flatten().cloned())
            .filter(|value| value.ends_with(".pem"))
            .collect();
        if let Some((envoy_name, envoy)) = envoy
            && *envoy_name == service.name
        {
            for (_, tls) in envoy.listener_tls() {
                for (cert, key) in tls.iter().flat_map(|tls| &tls.certificates) {
                    paths.extend([cert.clone(), key.clone()]);
                }
            }
            for cluster in envoy.clusters.values() {
                paths.extend(cluster.tls.iter().filter_map(|tls| tls.trusted_ca.clone()));
            }
        }
        for path in paths {
            certificate_file(service, &path, &certs, problems);
        }
    }
    // Whether each of our servers serves TLS, and the names its certificate
    // has (none when the file is not one of the script's: reported above).
    let mut presents: BTreeMap<&str, Option<Vec<String>>> = BTreeMap::new();
    for (name, parsed) in servers {
        let service = &services[*name];
        let cert = match parsed {
            Parsed::Cafe(config) => config.server.tls_cert.clone(),
            Parsed::Barista(config) => config.server.tls_cert.clone(),
        };
        let names = cert.map(|path| {
            let file = certificate_file(service, &path.to_string_lossy(), &certs, &mut Vec::new());
            names_of(&file)
        });
        if let Some(test) = &service.healthcheck
            && let Some(server) = test.windows(2).find(|p| p[0] == "--server").map(|p| &p[1])
        {
            check_dialled(name, "its healthcheck", server, names.as_deref(), problems);
        }
        presents.insert(name, names);
    }
    // The café to its baristas.
    for (name, parsed) in servers {
        let Parsed::Cafe(config) = parsed else {
            continue;
        };
        for endpoint in &config.barista_endpoints {
            let endpoint = endpoint.to_string();
            let host = endpoint
                .rsplit_once(':')
                .map_or(endpoint.as_str(), |(h, _)| h);
            let Some(names) = presents.get(host) else {
                continue;
            };
            let scheme = if config.barista_ca.is_some() {
                "https"
            } else {
                "http"
            };
            check_dialled(
                name,
                "barista endpoint",
                &format!("{scheme}://{endpoint}"),
                names.as_deref(),
                problems,
            );
            if let Some(ca) = &config.barista_ca {
                check_ca(&services[*name], &ca.to_string_lossy(), &certs, problems);
            }
        }
    }
    let Some((envoy_name, envoy)) = envoy else {
        return;
    };
    let envoy_service = &services[envoy_name];
    // Envoy to the cafés: TLS exactly when they serve it, to the name their
    // certificate has, trusting the CA.
    for cluster in envoy.clusters.values() {
        for (host, _) in &cluster.endpoints {
            let Some(names) = presents.get(host.as_str()) else {
                continue;
            };
            match (&cluster.tls, names) {
                (None, Some(_)) => problems.push(format!(
                    "{envoy_name}: cluster {}: {host} serves TLS only, but Envoy speaks plaintext to it (no transport_socket): every call and health check fails",
                    cluster.name
                )),
                (Some(_), None) => problems.push(format!(
                    "{envoy_name}: cluster {}: speaks TLS to {host}, which serves plaintext",
                    cluster.name
                )),
                (Some(tls), Some(names)) => {
                    if let Some(sni) = &tls.sni
                        && !names.is_empty()
                        && !names.contains(sni)
                    {
                        problems.push(format!(
                            "{envoy_name}: cluster {}: checks for {sni}, but {host}'s certificate names {names:?}",
                            cluster.name
                        ));
                    }
                    if let Some(ca) = &tls.trusted_ca {
                        check_ca(envoy_service, ca, &certs, problems);
                    }
                }
                (None, None) => {}
            }
        }
    }
    // The clients to Envoy: `https://` exactly when it ends TLS, to a name
    // its certificate has; and `localhost`, which the CLI on the host dials.
    for (port, tls) in envoy.listener_tls() {
        let file = tls
            .and_then(|tls| tls.certificates.first())
            .and_then(|(cert, key)| {
                let cert = certificate_file(envoy_service, cert, &certs, &mut Vec::new())?;
                let key = certificate_file(envoy_service, key, &certs, &mut Vec::new())?;
                if key != cert.replace(".pem", "-key.pem") {
                    problems.push(format!("{envoy_name}: presents {cert} with the key {key}"));
                }
                Some(cert)
            });
        let names = tls.map(|_| names_of(&file));
        if file.is_some()
            && let Some(names) = &names
            && !names.iter().any(|n| n == "localhost")
        {
            problems.push(format!(
                "{envoy_name}: ends TLS on {port} with a certificate for {names:?}; the CLI on the host dials localhost"
            ));
        }
        // The commands the compose files' headers give for the host, e.g.
        // `#   cafe --server https://localhost:50051 --ca certs/ca.pem menu`.
        for path in &deployment.compose {
            for line in deployment.file(path).lines() {
                let Some(server) = line
                    .trim_start_matches(['#', ' '])
                    .strip_prefix("cafe --server ")
                    .and_then(|rest| rest.split_whitespace().next())
                else {
                    continue;
                };
                if without_scheme(server).ends_with(&format!(":{port}")) {
                    let what = "the command in its header";
                    check_dialled(path, what, server, names.as_deref(), problems);
                }
            }
        }
        for service in services.values() {
            let Some(server) = service.var("CAFE_SERVER") else {
                continue;
            };
            if !without_scheme(server).ends_with(&format!(":{port}"))
                || !without_scheme(server).starts_with(&format!("{envoy_name}:"))
            {
                continue;
            }
            check_dialled(
                &service.name,
                "CAFE_SERVER",
                server,
                names.as_deref(),
                problems,
            );
            if server.starts_with("https://") {
                match service.var("CAFE_CA") {
                    None => problems.push(format!(
                        "{}: dials {server} without CAFE_CA; the private CA's certificate is trusted by nothing else",
                        service.name
                    )),
                    Some(ca) => check_ca(service, ca, &certs, problems),
                }
            }
        }
    }
}

/// A dialled address (`scheme://host:port`) uses `https://` exactly when its
/// server serves TLS (`names`: the names its certificate has), and then a
/// host its certificate names.
pub(crate) fn check_dialled(
    from: &str,
    what: &str,
    address: &str,
    names: Option<&[String]>,
    problems: &mut Vec<String>,
) {
    let https = address.starts_with("https://");
    let serves_tls = names.is_some();
    let names = names.unwrap_or_default();
    if https != serves_tls {
        let hint = if serves_tls {
            "it serves TLS only: use https://"
        } else {
            "it serves plaintext: use http://"
        };
        problems.push(format!("{from}: {what} {address}: {hint}"));
        return;
    }
    let host = without_scheme(address)
        .rsplit_once(':')
        .map_or("", |(host, _)| host);
    // No names: the certificate is no file of the script's, said already.
    if https && !names.is_empty() && !names.iter().any(|n| n == host) {
        problems.push(format!(
            "{from}: {what} {address}: the certificate there names {names:?}, not {host} (docker/make-certs.sh)"
        ));
    }
}

/// A file trusted as the CA is the CA make-certs.sh writes.
pub(crate) fn check_ca(
    service: &Service,
    path: &str,
    certs: &BTreeMap<String, Vec<String>>,
    problems: &mut Vec<String>,
) {
    if let Some(file) = certificate_file(service, path, certs, &mut Vec::new())
        && file != "ca.pem"
    {
        problems.push(format!(
            "{}: trusts {path} as the CA; make-certs.sh's CA is ca.pem",
            service.name
        ));
    }
}
