# Sourced by bench/compare.sh and bench/scale.sh: runs `python3 bench/$1`
# with the remaining arguments once per backend: SQLite (a temporary
# folder) and PostgreSQL (a fresh database on $DATABASE_URL's server,
# dropped afterwards); --sqlite or --postgres picks one.
run_per_backend() {
    local script="$1"
    shift
    local args=() backends=()
    for a in "$@"; do
        case "$a" in
            --sqlite) backends+=(sqlite) ;;
            --postgres) backends+=(postgres) ;;
            *) args+=("$a") ;;
        esac
    done
    [ ${#backends[@]} -gt 0 ] || backends=(sqlite postgres)
    admin="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    db="ct_bench_$(date +%s)_$$"
    cleanup() { psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true; }
    for backend in "${backends[@]}"; do
        if [ "$backend" = postgres ]; then
            trap cleanup EXIT
            psql "$admin" -qc "CREATE DATABASE $db"
            python3 "bench/$script" "${args[@]}" --storage-url "${admin%/*}/$db"
        else
            python3 "bench/$script" "${args[@]}"
        fi
    done
}
