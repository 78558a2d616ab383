#!/usr/bin/env bash
# Packs every MLNet.Attention package into a local folder, then builds and runs a fresh console app that references
# them from that folder only (as a user would), training, saving and reloading a tiny model; then a TorchSharp-only app
# that references just MLNet.Attention.Modules and runs every attention block forward and backward.
# A unique pre-release version per run keeps stale copies in the NuGet cache out of the picture.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version="0.1.0-smoke.$(date +%Y%m%d%H%M%S)"
dotnet pack "$root/MLNet.Attention.sln" -c Release -p:Version="$version" -o "$work/packages" --nologo -v quiet
ls "$work/packages"
cp -r "$root/nuget/smoke/App" "$work/App"
cp -r "$root/nuget/smoke/ModulesApp" "$work/ModulesApp"
cat > "$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="mlnet-attention-local" value="$work/packages" />
  </packageSources>
</configuration>
XML
for app in App ModulesApp; do
  cd "$work/$app"
  dotnet build -c Release -p:MLNetAttentionVersion="$version" --nologo -v normal | grep -E "MLNet.Attention.Native:| error |Build succeeded" || true
  dotnet run -c Release --no-build -p:MLNetAttentionVersion="$version"
done
