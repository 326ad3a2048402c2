#!/bin/sh
# Builds the pipeline-statistics layer into DIR (default .gpu/vk, which travels to the GPU machine with .gpu).
# Needs gcc and Debian's libvulkan-dev (the headers) here; the library needs only libc there.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-.gpu/vk}
mkdir -p "$out"
gcc -O2 -shared -fPIC -fvisibility=hidden -Wall -Wextra -o "$out/libmdl_pipeline_stats.so" "$here/layer.c"
cp "$here/VkLayer_mdl_pipeline_stats.json" "$out/"
echo "built $out/libmdl_pipeline_stats.so"
