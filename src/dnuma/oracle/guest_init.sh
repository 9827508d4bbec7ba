#!/bin/busybox sh
# /init of the oracle's initramfs: mount, run /steps (a shell script of
# `step NAME` lines with the guest-side commands between them), dump a
# snapshot after each step into /out/NN-NAME, then print /out as
# tar | gzip | base64 between marker lines on the console and power off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /out
N=0
T=/sys/kernel/tracing

trace_setup() {  # the kmem page tracepoints, off until a snapshot turns them on
    mount -t tracefs nodev $T
    echo 0 > $T/tracing_on
    echo 8192 > $T/buffer_size_kb
    for e in mm_page_alloc mm_page_alloc_zone_locked mm_page_alloc_extfrag mm_page_free \
             mm_page_free_batched mm_page_pcpu_drain; do
        echo 1 > $T/events/kmem/$e/enable
    done
}

copy() {  # copy FILE (a text file of /proc or /sys) to /out/$SNAP/FILE
    mkdir -p "$SNAP${1%/*}"
    cat "$1" > "$SNAP$1" 2>/dev/null || rm -f "$SNAP$1"
}

link() {  # keep the symlink LINK as a symlink
    mkdir -p "$SNAP${1%/*}"
    ln -s "$(readlink "$1")" "$SNAP$1"
}

blocks() { ls -d /sys/devices/system/memory/memory[0-9]* | wc -l; }

qmp_wait() {  # add ID NODE BYTES | remove ID: the host hot-plugs over QMP; wait for it
    n=$(blocks)
    echo "dnuma-oracle: qmp $*"
    i=0
    while [ $i -lt 100 ]; do  # up to 10 s for the blocks to come or go
        sleep 0.1
        i=$((i + 1))
        now=$(blocks)
        if [ "$1" = add ] && [ "$now" -gt "$n" ]; then
            grep -qx offline /sys/devices/system/memory/memory*/state || break
        fi
        [ "$1" = remove ] && [ "$now" -lt "$n" ] && break
    done
    echo "blocks $n -> $(blocks)" > /tmp/result
}

write_result() {  # VALUE FILE: write a sysfs file; keep the exit status and message
    echo "$1" > "$2" 2> /tmp/err
    echo "rc=$? $(cat /tmp/err)" > /tmp/result
}

snapshot() {  # NAME [traced] [trace-next]
    SNAP=/out/$(printf %02d $N)-$1
    N=$((N + 1))
    mkdir -p "$SNAP"
    for f in meminfo zoneinfo buddyinfo; do copy /proc/$f; done
    case " $* " in *" traced "*)  # the trace ends once buddyinfo is read
        echo 0 > $T/tracing_on
        cat $T/per_cpu/cpu*/stats > "$SNAP/trace-stats"
        cat $T/trace > "$SNAP/trace"
        echo > $T/trace
    esac
    for f in pagetypeinfo vmstat iomem; do copy /proc/$f; done
    for f in min_free_kbytes watermark_scale_factor lowmem_reserve_ratio \
             percpu_pagelist_high_fraction; do copy /proc/sys/vm/$f; done
    copy /sys/kernel/mm/transparent_hugepage/enabled
    cat /proc/buddyinfo > "$SNAP/proc/buddyinfo.before-kpageflags"
    case " $* " in *" trace-next "*)  # the next step's trace starts before kpageflags
        echo > $T/trace
        echo 1 > $T/tracing_on
    esac
    cat /proc/kpageflags > "$SNAP/proc/kpageflags"
    cat /proc/kpagecount > "$SNAP/proc/kpagecount"
    cat /proc/buddyinfo > "$SNAP/proc/buddyinfo.after-kpageflags"
    d=/sys/devices/system
    for f in $d/node/possible $d/node/online $d/node/has_memory $d/node/has_normal_memory \
             $d/node/has_cpu $d/node/has_high_memory $d/cpu/online $d/cpu/possible \
             $d/cpu/present $d/cpu/offline $d/memory/block_size_bytes \
             $d/memory/auto_online_blocks; do
        [ -e $f ] && copy $f
    done
    for n in $d/node/node[0-9]*; do
        for f in meminfo numastat vmstat distance cpulist cpumap; do copy $n/$f; done
        for l in $n/memory[0-9]* $n/cpu[0-9]*; do [ -L $l ] && link $l; done
    done
    for b in $d/memory/memory[0-9]*; do
        for f in state online phys_device phys_index removable valid_zones; do copy $b/$f; done
        for l in $b/node[0-9]*; do [ -L $l ] && link $l; done
    done
    for c in $d/cpu/cpu[0-9]*; do [ -e $c/online ] && copy $c/online; done
    uname -r > "$SNAP/release"
    [ -f /tmp/result ] && mv /tmp/result "$SNAP/result"
}

step() {  # the end of a step: its snapshot (NAME and its trace flags)
    echo "dnuma-oracle: step $1"
    snapshot "$@"
}

. /steps

echo "=====DNUMA-ORACLE-BEGIN====="
cd /out && tar c . | gzip | base64
echo "=====DNUMA-ORACLE-END====="
poweroff -f
