# Counts the kernel table replacements (IPT_SO_SET_REPLACE, IP6T_SO_SET_REPLACE: one
# whole-table write each, iptables-legacy) in an `strace -f -e
# trace=setsockopt,unshare,clone,clone3,fork,vfork` log, leaving out those made in a
# network namespace of their own: by a process that called unshare(CLONE_NEWNET), or one
# it started (`start` loads each policy apart that way before writing; see
# Iptables::load_apart). Usage: awk -f table-writes.awk LOG LOG (the log twice: the first
# pass finds those processes, the second counts).
NR == FNR {
    if ($0 ~ /unshare\([^)]*CLONE_NEWNET/ && $0 ~ /= 0$/) apart[$1] = 1
    if (($1 in apart) && $0 ~ /(clone|clone3|fork|vfork)[(<]|(clone|clone3|fork|vfork) resumed/ && match($0, /= [0-9]+$/))
        apart[substr($0, RSTART + 2)] = 1
    next
}
/SO_SET_REPLACE/ && !($1 in apart) { n++ }
END { print n + 0 }
