# Sourced by the benchmarks that put Musit beside nginx under wrk.
#   wrk_table SECONDS LUA NAME_A URL_A NAME_B URL_B
# prints, for 1/16/256 connections: 64 KiB Range GETs (the Range header set by LUA) in
# req/s, whole-file GETs in bytes/s (a 7 MB answer takes seconds at 256 connections, so few
# whole requests fit a cell and wrk's req/s means little there), and A/B for each. wrk waits
# 10 s before it calls a request lost; a cell with errors or non-2xx answers shows !N.
wrk_table() {
    local seconds=$1 lua=$2 a=$3 a_url=$4 b=$5 b_url=$6 kind who url c v bad row
    local -A num
    printf "  %-22s %12s %12s %12s\n" "" "1 conn" "16 conns" "256 conns"
    for kind in range full; do
        for who in "$a" "$b"; do
            url=$([ "$who" = "$a" ] && echo "$a_url" || echo "$b_url")
            row=""
            for c in 1 16 256; do
                local args=(-t "$([ $c -lt 2 ] && echo 1 || echo 2)" -c "$c" -d "${seconds}s" --timeout 10s)
                [ $kind = range ] && args+=(-s "$lua")
                local res
                res=$(wrk "${args[@]}" "$url" 2>/dev/null)
                if [ $kind = range ]; then
                    v=$(echo "$res" | awk '/Requests\/sec/ {printf "%.0f req/s", $2}')
                    num[$kind,$who,$c]=$(echo "$res" | awk '/Requests\/sec/ {print $2}')
                else
                    v=$(echo "$res" | awk '/Transfer\/sec/ {print $2 "/s"}')
                    # Bytes per second, whatever unit wrk chose.
                    num[$kind,$who,$c]=$(echo "$v" | awk '{ n = $1 + 0; u = $1; gsub(/[0-9.]|\/s/, "", u);
                        m = (u == "GB") ? 1e9 : (u == "MB") ? 1e6 : (u == "KB") ? 1e3 : 1; print n * m }')
                fi
                bad=$(echo "$res" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
                row+=$(printf " %12s" "$v$([ "$bad" = 0 ] || echo " !$bad")")
            done
            printf "  %-22s%s\n" "$who $kind" "$row"
        done
        row=""
        for c in 1 16 256; do
            row+=$(printf " %12s" "$(awk -v x="${num[$kind,$a,$c]}" -v y="${num[$kind,$b,$c]}" 'BEGIN { printf "%.2fx", x / y }')")
        done
        printf "  %-22s%s\n" "$a/$b $kind" "$row"
    done
}
