# ct-relay: build in the Rust image, run on slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY migrations ./migrations
COPY bench ./bench
RUN cargo build --release --locked --bin ct-relay

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app ct-relay
WORKDIR /app
COPY --from=build /src/target/release/ct-relay /usr/local/bin/ct-relay
COPY config ./config
RUN mkdir -p /app/data && chown ct-relay /app/data
USER ct-relay
VOLUME /app/data
EXPOSE 2525 8080
ENTRYPOINT ["ct-relay"]
CMD ["serve"]
