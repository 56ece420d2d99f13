//! Each kind of drift between the compose files and the binaries, made on
//! purpose in memory, is caught: a check that cannot fail would be worse
//! than none.

use super::{Deployment, checks::problems};

#[test]
fn each_kind_of_tls_drift_is_caught() {
    // (what goes wrong, file, text in the file, what it becomes)
    let breakages = [
        (
            "Envoy left on the plaintext configuration, in front of TLS cafés",
            "docker-compose.tls.yml",
            "\"/etc/envoy/envoy.tls.yaml\", \"--log-level\"",
            "\"/etc/envoy/envoy.yaml\", \"--log-level\"",
        ),
        (
            "Envoy running a file that is not mounted",
            "docker-compose.tls.yml",
            "./deploy/envoy/envoy.tls.yaml:/etc/envoy/envoy.tls.yaml:ro",
            "./deploy/envoy/envoy.tls.yaml:/etc/envoy/tls.yaml:ro",
        ),
        (
            "Envoy without the certificates",
            "docker-compose.tls.yml",
            "envoy.tls.yaml:ro\n      - ./certs:/certs:ro",
            "envoy.tls.yaml:ro",
        ),
        (
            "a client that bypasses Envoy",
            "docker-compose.tls.yml",
            "CAFE_SERVER: \"https://envoy:50051\"",
            "CAFE_SERVER: \"https://cafe:50051\"",
        ),
        (
            "a plaintext client to Envoy's TLS",
            "docker-compose.tls.yml",
            "CAFE_SERVER: \"https://envoy:50051\"",
            "CAFE_SERVER: \"http://envoy:50051\"",
        ),
        (
            "a TLS client that does not trust the private CA",
            "docker-compose.tls.yml",
            "      CAFE_CA: /certs/ca.pem\n",
            "",
        ),
        (
            "a plaintext health check of a TLS café",
            "docker-compose.tls.yml",
            "\"https://127.0.0.1:50051\"",
            "\"http://127.0.0.1:50051\"",
        ),
        (
            "a header's command that dials Envoy's TLS in plaintext",
            "docker-compose.tls.yml",
            "cafe --server https://localhost:50051",
            "cafe --server http://localhost:50051",
        ),
        (
            "a certificate make-certs.sh does not write",
            "docker-compose.tls.yml",
            "CAFE_TLS_CERT: /certs/cafe.pem",
            "CAFE_TLS_CERT: /certs/cafe-cert.pem",
        ),
        (
            "a certificate outside the mount",
            "docker-compose.tls.yml",
            "BARISTA_TLS_CERT: /certs/barista.pem",
            "BARISTA_TLS_CERT: /etc/certs/barista.pem",
        ),
        (
            "the café's certificate without the name the client dials",
            "docker/make-certs.sh",
            "DNS:cafe,DNS:envoy,",
            "DNS:cafe,",
        ),
        (
            "the café's certificate without the name Envoy checks",
            "docker/make-certs.sh",
            "\"DNS:cafe,DNS:envoy,",
            "\"DNS:envoy,",
        ),
        (
            "the barista's certificate without its service's name",
            "docker/make-certs.sh",
            "\"DNS:barista,",
            "\"",
        ),
        (
            "Envoy presenting a certificate for the baristas",
            "deploy/envoy/envoy.tls.yaml",
            "certificate_chain: { filename: /certs/cafe.pem }\n                    private_key: { filename: /certs/cafe-key.pem }",
            "certificate_chain: { filename: /certs/barista.pem }\n                    private_key: { filename: /certs/barista-key.pem }",
        ),
        (
            "Envoy trusting another CA than the cafés' certificates' one",
            "deploy/envoy/envoy.tls.yaml",
            "trusted_ca: { filename: /certs/ca.pem }",
            "trusted_ca: { filename: /certs/cafe.pem }",
        ),
        (
            "Envoy reading its certificates from outside the mount",
            "deploy/envoy/envoy.tls.yaml",
            "trusted_ca: { filename: /certs/ca.pem }",
            "trusted_ca: { filename: /etc/ssl/ca.pem }",
        ),
    ];
    for (what, file, from, to) in breakages {
        let problems = problems(&Deployment::tls().with(file, from, to));
        assert!(
            !problems.is_empty(),
            "{what} ({file}: {from} -> {to}) went unnoticed"
        );
        eprintln!("{what}: {}", problems.join("; "));
    }
    // And the plain deployment refuses TLS where its cafés have none.
    let problems = problems(&Deployment::plain().with(
        "docker-compose.yml",
        "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro",
        "./deploy/envoy/envoy.tls.yaml:/etc/envoy/envoy.yaml:ro",
    ));
    assert!(
        !problems.is_empty(),
        "TLS Envoy in front of plaintext cafés went unnoticed"
    );
    eprintln!(
        "TLS Envoy in front of plaintext cafés: {}",
        problems.join("; ")
    );
}

#[test]
fn each_kind_of_drift_is_caught() {
    // (what goes wrong, text in the file, what it becomes)
    let breakages = [
        (
            "a variable typo",
            "CAFE_BARISTA_ENDPOINTS:",
            "CAFE_BARISTA_ENDPOINT:",
        ),
        (
            "a value the flag refuses",
            "BARISTA_TIME_SCALE: \"0.05\"",
            "BARISTA_TIME_SCALE: \"fast\"",
        ),
        (
            "a flag typo in a command",
            "command: [\"--otlp-endpoint\"",
            "command: [\"--otlp-endpiont\"",
        ),
        (
            "a flag typo in the client's subcommand",
            "\"--customers\"",
            "\"--customer\"",
        ),
        (
            "a flag typo in a health check",
            "\"health\", \"--timeout\"",
            "\"health\", \"--timout\"",
        ),
        (
            "an exposed port that nothing listens on",
            "- \"50051\"",
            "- \"50052\"",
        ),
        (
            "a server listening on the container's loopback",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"127.0.0.1:50051\"",
        ),
        (
            "an exposed metrics port that nothing listens on",
            "- \"9051\" # metrics",
            "- \"9052\" # metrics",
        ),
        (
            "metrics on the container's loopback",
            "BARISTA_METRICS_LISTEN: \"0.0.0.0:9061\"",
            "BARISTA_METRICS_LISTEN: \"127.0.0.1:9061\"",
        ),
        (
            "a server without metrics",
            "CAFE_METRICS_LISTEN: \"0.0.0.0:9051\"",
            "CAFE_LOG_FORMAT: \"text\"",
        ),
        (
            "a café published on the host (two replicas cannot share a port)",
            "    expose:\n      - \"50051\"",
            "    ports:\n      - \"127.0.0.1:50052:50051\"\n    expose:\n      - \"50051\"",
        ),
        (
            "a barista endpoint on the wrong port",
            "\"barista:50061\"",
            "\"barista:50062\"",
        ),
        (
            "a barista endpoint naming no service",
            "\"barista:50061\"",
            "\"baristas:50061\"",
        ),
        (
            "the OTLP/HTTP port for our gRPC exporter",
            "\"http://jaeger:4317\"]",
            "\"http://jaeger:4318\"]",
        ),
        (
            "a health check on another server's port",
            "\"http://127.0.0.1:50061\", \"health\"",
            "\"http://127.0.0.1:50051\", \"health\"",
        ),
        (
            "a client pointed past Envoy's listener",
            "CAFE_SERVER: \"http://envoy:50051\"",
            "CAFE_SERVER: \"http://envoy:50061\"",
        ),
        (
            "a client pointed at a single café",
            "CAFE_SERVER: \"http://envoy:50051\"",
            "CAFE_SERVER: \"http://cafe:50051\"",
        ),
        (
            "a variable the health check's CLI would read too",
            "CAFE_LISTEN: \"0.0.0.0:50051\"",
            "CAFE_LISTEN: \"0.0.0.0:50051\"\n      OTEL_SERVICE_NAME: \"cafe\"",
        ),
        (
            "a stop grace period shorter than the shutdown",
            "stop_grace_period: 20s\n\n  postgres:",
            "stop_grace_period: 16s\n\n  postgres:",
        ),
        (
            "a shutdown grace shorter than the longest drink",
            "BARISTA_SHUTDOWN_GRACE: \"15s\"",
            "BARISTA_SHUTDOWN_GRACE: \"10s\"",
        ),
        (
            "a health check in shell form",
            "test: [\"CMD\", \"cafe\"",
            "test: [\"CMD-SHELL\", \"cafe\"",
        ),
        (
            "depends_on that does not wait for health",
            "barista:\n        condition: service_healthy",
            "barista:\n        condition: service_started",
        ),
        (
            "cafés that do not wait for PostgreSQL's health",
            "postgres:\n        condition: service_healthy",
            "postgres:\n        condition: service_started",
        ),
        (
            "a database URL with another user than the server's",
            "postgres://cafe:cafe@postgres",
            "postgres://postgres:cafe@postgres",
        ),
        (
            "a database URL with another password",
            "postgres://cafe:cafe@postgres",
            "postgres://cafe:secret@postgres",
        ),
        (
            "a database URL on the wrong port",
            "@postgres:5432/cafe",
            "@postgres:5433/cafe",
        ),
        (
            "the cafés on SQLite, which one café holds alone",
            "DATABASE_URL: \"postgres://cafe:cafe@postgres:5432/cafe\"",
            "CAFE_DATA_DIR: \"/var/lib/cafe\"",
        ),
        (
            "a PostgreSQL image that is not pinned",
            "image: postgres:17.6-alpine",
            "image: postgres:latest",
        ),
        (
            "an Envoy image that is not pinned",
            "image: envoyproxy/envoy:v1.34.1",
            "image: envoyproxy/envoy:latest",
        ),
        (
            "Envoy reading its configuration from elsewhere",
            "./deploy/envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro",
            "./envoy.yaml:/etc/envoy/envoy.yaml:ro",
        ),
        (
            "Envoy's published port that it does not listen on",
            "\"127.0.0.1:50051:50051\" # gRPC",
            "\"127.0.0.1:50051:50052\" # gRPC",
        ),
        (
            "Envoy started before the cafés are healthy",
            "      cafe:\n        condition: service_healthy",
            "      cafe:\n        condition: service_started",
        ),
    ];
    for (what, from, to) in breakages {
        let problems = problems(&Deployment::plain().with("docker-compose.yml", from, to));
        assert!(
            !problems.is_empty(),
            "{what} ({from} -> {to}) went unnoticed"
        );
        // Shown with --nocapture, to see that each is caught for its reason.
        eprintln!("{what}: {}", problems.join("; "));
    }
    // The Dockerfile side: a binary the compose file runs but the image
    // does not have.
    let broken = Deployment::plain().with("Dockerfile", "--bin cafe-barista ", "");
    assert!(!problems(&broken).is_empty());
    // And Envoy's, against the compose services (its own checks are in
    // `super::envoy`).
    for (what, from, to) in [
        (
            "an Envoy cluster on a port no café listens on",
            "{ address: cafe, port_value: 50051 }",
            "{ address: cafe, port_value: 50061 }",
        ),
        (
            "an Envoy cluster naming no café",
            "{ address: cafe, port_value: 50051 }",
            "{ address: barista, port_value: 50051 }",
        ),
    ] {
        let problems = problems(&Deployment::plain().with("deploy/envoy/envoy.yaml", from, to));
        assert!(!problems.is_empty(), "{what} went unnoticed");
        eprintln!("{what}: {}", problems.join("; "));
    }
}
