# ct-relay: built as the Debian package by scripts/package.sh (the steps CI
# runs and checks with scripts/package-test.sh), then installed with apt on
# slim Debian, as on a host. Only what runs differs: no systemd in a
# container, so the image starts `serve` directly as the ct-relay user.
FROM rust:1.95-bookworm AS build
RUN cargo install cargo-deb --locked --version 3.8.0
WORKDIR /src
COPY Cargo.toml Cargo.lock LICENSE README.md ./
COPY src ./src
COPY templates ./templates
COPY migrations ./migrations
COPY bench ./bench
COPY docs ./docs
COPY ops ./ops
COPY packaging ./packaging
COPY scripts/package.sh ./scripts/package.sh
RUN scripts/package.sh

FROM debian:bookworm-slim
COPY --from=build /src/target/debian/ct-relay.deb /tmp/ct-relay.deb
# The package's postinst makes secrets; in an image they would be shared by
# every container run from it, so they are removed: each deployment mounts
# its own at /etc/ct-relay (or sets CT_RELAY__… as docker-compose.yml does).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates /tmp/ct-relay.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/ct-relay.deb \
    && rm -f /etc/ct-relay/hmac.key /etc/ct-relay/encryption.key /etc/ct-relay/api.token /etc/default/ct-relay
USER ct-relay
WORKDIR /var/lib/ct-relay
VOLUME /var/lib/ct-relay
EXPOSE 25 8080
ENTRYPOINT ["ct-relay"]
CMD ["--config", "/etc/ct-relay/ct-relay.toml", "serve"]
