# Sourced by scripts/bench-live and scripts/bench-peers: what `flowlink
# replay` sends for a STREAM argument and the parser that reads it.
#
#   stream_of STREAM   # sets `input` (replay's arguments), `parser`, and
#                      # `generated_keys` (empty for a capture)
#
# STREAM is a capture under tests/fixtures/captures (softflowd_v9, …) or
# gen:FORMAT[:KEYS], a stream `flowlink replay --generate` builds (v9, ipfix,
# sflow; KEYS distinct keys a pass, default 1,000,000).
stream_of() {
    local stream=$1 format keys
    case "$stream" in
    gen:*)
        IFS=: read -r _ format keys <<<"$stream"
        generated_keys=${keys:-1000000}
        input=(--generate "$format" --keys "$generated_keys")
        parser=$(case "$format" in v9) echo netflow ;; *) echo "$format" ;; esac)
        ;;
    *)
        generated_keys=
        input=(tests/fixtures/captures/"$stream"/dgrams/*.bin)
        parser=$(case "$stream" in *v10*) echo ipfix ;; *sfprobe*) echo sflow ;; *) echo netflow ;; esac)
        ;;
    esac
}
