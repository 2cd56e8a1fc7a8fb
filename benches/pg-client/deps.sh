#!/usr/bin/env bash
# What each PostgreSQL client costs to build: one tiny crate per client (tokio plus that client,
# nothing else), its dependency count and the wall time of a clean `cargo build --release`.
# Each crate is built in a fresh target dir, one after the other; the registry is fetched first
# so no download is timed. Prints a markdown table. About 10 minutes on 2 cores. On a machine
# shared with other builds the wall time swings; the CPU time (user + system of cargo and every
# rustc it starts) holds up much better, so both are printed.
#
#   bash benches/pg-client/deps.sh [WORKDIR [NAME...]]   # WORKDIR defaults to a fresh mktemp -d;
#                                                       # NAMEs: only those rows
set -euo pipefail
work=${1:-$(mktemp -d)}
shift || true
only=" $* "
mkdir -p "$work"
tokio='tokio = { version = "1.40", features = ["rt-multi-thread", "macros"] }'

# name | dependencies besides tokio (\n between lines) | a main that names the client, so it is really compiled
crates=(
  'tokio alone (the baseline of every row)||tokio::spawn(async {}).await.unwrap();'
  'tokio-postgres|tokio-postgres = "=0.7.18"|let _ = tokio_postgres::connect(URL, tokio_postgres::NoTls).await;'
  'tokio-postgres+deadpool|tokio-postgres = "=0.7.18"\ndeadpool-postgres = "=0.14.2"|let _ = deadpool_postgres::Config { url: Some(URL.into()), ..Default::default() }.create_pool(Some(deadpool_postgres::Runtime::Tokio1), tokio_postgres::NoTls);'
  'tokio-postgres+rustls|tokio-postgres = "=0.7.18"\ntokio-postgres-rustls = { version = "=0.14.0", features = ["ring", "webpki-roots"] }|let _ = tokio_postgres_rustls::MakeRustlsConnect::new(rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider())).with_safe_default_protocol_versions().unwrap().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());'
  'sqlx-0.8|sqlx = { version = "=0.8.6", default-features = false, features = ["postgres", "runtime-tokio"] }|let _ = sqlx::PgPool::connect(URL).await;'
  'sqlx-0.8+macros|sqlx = { version = "=0.8.6", default-features = false, features = ["postgres", "runtime-tokio", "macros"] }|let _ = sqlx::PgPool::connect(URL).await;'
  'sqlx-0.8+rustls|sqlx = { version = "=0.8.6", default-features = false, features = ["postgres", "runtime-tokio", "tls-rustls-ring-webpki"] }|let _ = sqlx::PgPool::connect(URL).await;'
  'sqlx-0.9|sqlx = { version = "=0.9.1", default-features = false, features = ["postgres", "runtime-tokio"] }|let _ = sqlx::PgPool::connect(URL).await;'
)

echo "| crate | \`cargo tree -e normal \\| wc -l\` | distinct packages (normal, without the crate itself) | crates compiled (\`Compiling\` lines: build deps and proc macros too) | clean \`cargo build --release\`: CPU time | wall time |"
echo "| --- | --- | --- | --- | --- | --- |"
for entry in "${crates[@]}"; do
  IFS='|' read -r name deps body <<<"$entry"
  if [ "$only" != "  " ] && [[ $only != *" ${name%% *} "* ]]; then continue; fi
  dir="$work/${name%% *}"; dir=${dir//+/-}
  rm -rf "$dir"; mkdir -p "$dir/src"
  printf '[package]\nname = "tiny"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n[dependencies]\n%s\n%b\n' "$tokio" "$deps" >"$dir/Cargo.toml"
  if [[ $name == *rustls* && $name == tokio* ]]; then
    printf 'rustls = { version = "0.23", default-features = false, features = ["ring", "std"] }\n' >>"$dir/Cargo.toml"
  fi
  printf 'const URL: &str = "postgres://postgres@127.0.0.1:5432/test";\n#[tokio::main]\nasync fn main() {\n    %s\n}\n' "$body" >"$dir/src/main.rs"
  (cd "$dir" && cargo generate-lockfile -q && cargo fetch -q)
  lines=$(cd "$dir" && cargo tree -e normal | wc -l)
  distinct=$(cd "$dir" && cargo tree -e normal --prefix none | sed 's/ (\*)$//' | sort -u | grep -vc "^tiny ")
  # %e wall, %U user, %S system seconds of cargo and its children.
  if ! /usr/bin/time -f '%e %U %S' -o "$dir/time" \
      env CARGO_TARGET_DIR="$dir/target" cargo build --release --manifest-path "$dir/Cargo.toml" 2>"$dir/build.log"; then
    echo "| $name | build failed: see $dir/build.log | | | | |"; continue
  fi
  read -r wall user sys <"$dir/time"
  units=$(grep "^ *Compiling " "$dir/build.log" | grep -vc " tiny ")
  printf '| %s | %s | %s | %s | %.0f s | %.0f s |\n' "$name" "$lines" "$distinct" "$units" "$(echo "$user + $sys" | bc)" "$wall"
done
