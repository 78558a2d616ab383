#!/usr/bin/env bash
# Uses the packed packages exactly as a user would. Packs the seven MLNet.Attention packages into a temporary folder
# (a unique pre-release version per run keeps stale copies in the NuGet cache out of the picture), then for each app:
# `dotnet new console` in a temporary folder, `dotnet add package` from that folder (through a nuget.config, other
# packages from the usual feed), build (the output must show the src/Native patch step), run, check its output.
#   ReadmeApp        the C# example of the MLNet.Attention package README, taken from the package as restored (not
#                    from the repository), compiled verbatim and run on ETTh1 (samples/data/ETTh1.csv.gz)
#   ModulesReadmeApp the same for the MLNet.Attention.Modules package README
#   TransformsReadmeApp  the same for MLNet.Attention.Transforms (classifier backbone → featurizer → SDCA, reload)
#   WholeSlideReadmeApp  the same for MLNet.Attention.WholeSlide on samples/data/ihc-aperio-20x.tif (open, tissue
#                    tiles, ResNet-18 features of 8 tiles; the ONNX graphs must land in the app's output folder)
#   OnnxReadmeApp    the same for MLNet.Attention.Onnx (train a small classifier, export it, ApplyOnnxModel gives
#                    the model's Score)
#   App              tiny forecaster: train, save, reload in a new MLContext, identical forecasts (smoke/App)
#   ModulesApp       references only MLNet.Attention.Modules: every block forward and backward (smoke/ModulesApp)
#   TorchSharpApp    Microsoft.ML.TorchSharp 0.23.1 next to MLNet.Attention in one process (smoke/TorchSharpApp)
# Also checks each package's nuspec (version, dependency versions, readme) and the git-derived default version.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
start=$SECONDS
version="0.1.0-smoke.$(date +%Y%m%d%H%M%S)"
fail() { echo "NUGET SMOKE FAILED: $*"; exit 1; }
step() { echo "== $* ($((SECONDS - start)) s)"; }

# Only the packable projects (a solution filter), so tests, samples and benchmarks are not rebuilt for this version.
cat > "$work/packages.slnf" <<JSON
{ "solution": { "path": "$root/MLNet.Attention.sln", "projects": [
  "src/Native/MLNet.Attention.Native.csproj", "src/Modules/MLNet.Attention.Modules.csproj",
  "src/Core/MLNet.Attention.Core.csproj", "src/Estimators/MLNet.Attention.Estimators.csproj",
  "src/Transforms/MLNet.Attention.Transforms.csproj", "src/WholeSlide/MLNet.Attention.WholeSlide.csproj",
  "src/Onnx/MLNet.Attention.Onnx.csproj" ] } }
JSON
step "pack $version"
dotnet pack "$work/packages.slnf" -c Release -p:Version="$version" -o "$work/packages" --nologo -v quiet
ls "$work/packages"
packages=(MLNet.Attention.Native MLNet.Attention.Modules MLNet.Attention.Core MLNet.Attention)
for p in "${packages[@]}" MLNet.Attention.Transforms MLNet.Attention.WholeSlide MLNet.Attention.Onnx; do [ -f "$work/packages/$p.$version.nupkg" ] || fail "$p.$version.nupkg was not packed"; done

# Without -p:Version the version comes from git: 0.1.0-dev.<commit count>.g<sha8> (Directory.Build.targets).
if git -C "$root" rev-parse HEAD > /dev/null 2>&1; then
  step "git-derived version"
  expected="0.1.0-dev.$(git -C "$root" rev-list --count HEAD).g$(git -C "$root" rev-parse HEAD | cut -c1-8)"
  dotnet pack "$root/src/Native/MLNet.Attention.Native.csproj" -c Release -o "$work/gitversion" --nologo -v quiet
  [ -f "$work/gitversion/MLNet.Attention.Native.$expected.nupkg" ] \
    || fail "expected MLNet.Attention.Native.$expected.nupkg, got: $(ls "$work/gitversion")"
  echo "MLNet.Attention.Native.$expected.nupkg"
fi

cat > "$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="mlnet-attention-local" value="$work/packages" />
  </packageSources>
</configuration>
XML
cache=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')

# new_app NAME PACKAGE[@VERSION]...: a fresh console app with those packages added as a user adds them.
new_app() {
  local name=$1; shift
  dotnet new console -o "$work/$name" --no-restore > /dev/null
  for package in "$@"; do
    local id=${package%@*} v=$version
    [[ $package == *@* ]] && v=${package#*@}
    dotnet add "$work/$name" package "$id" --version "$v" > "$work/$name.add.log" 2>&1 \
      || { cat "$work/$name.add.log"; fail "$name: dotnet add package $id $v"; }
  done
}

# build_and_run NAME [ARG...]: builds (the native patch step must report), runs from the app folder with the
# arguments, keeps output in NAME.log.
build_and_run() {
  local name=$1 t0=$SECONDS
  shift
  (cd "$work/$name" && dotnet build -c Release --nologo -v detailed > "$work/$name.build.log" 2>&1) \
    || { grep -E ": (error|warning) " "$work/$name.build.log" | sort -u | tail -20; fail "$name: build failed"; }
  local native
  native=$(grep -E "MLNet.Attention.Native: (marked|.* provides|.* already patched|.* does not require)" \
    "$work/$name.build.log" | sed -E 's/^ +//' | sort -u)
  [ -n "$native" ] || fail "$name: the MLNet.Attention.Native patch step did not run"
  echo "$native"
  echo "($name: added and restored by $((t0 - start)) s, built in $((SECONDS - t0)) s)"
  local rc=0
  (cd "$work/$name" && dotnet run -c Release --no-build -- "$@") 2>&1 | tee "$work/$name.log" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name: exit code $rc"
}

# The packages as restored: nuspec versions and dependencies, and the README each one ships.
step "ReadmeApp: the MLNet.Attention package README example"
new_app ReadmeApp MLNet.Attention
# check_restored PACKAGE: its nuspec (version, dependency versions) and README as a fresh app restored them.
check_restored() {
  local p=$1 dir nuspec readme
  dir="$cache/${p,,}/$version"
  nuspec="$dir/${p,,}.nuspec"
  [ -f "$nuspec" ] || fail "$p $version was not restored into $cache"
  grep -q "<version>$version</version>" "$nuspec" || fail "$p: nuspec version is not $version"
  readme=$(sed -nE 's|.*<readme>(.*)</readme>.*|\1|p' "$nuspec")
  [ -n "$readme" ] && [ -f "$dir/$readme" ] || fail "$p: no readme in the package"
  if grep -E '<dependency id="MLNet\.Attention' "$nuspec" | grep -vq "version=\"$version\""; then
    fail "$p: a dependency on another MLNet.Attention package is not at $version"
  fi
  grep -qE '\]\((src|test|docs|samples|\.\./)' "$dir/$readme" && fail "$p: $readme links into the repository"
  echo "$p $version: readme $readme, $(grep -c '<dependency ' "$nuspec") dependencies"
}
for p in "${packages[@]}"; do check_restored "$p"; done

# extract_example PACKAGE FILE: the first ```csharp block of the package's README, verbatim.
extract_example() {
  local dir="$cache/${1,,}/$version" readme
  readme=$(sed -nE 's|.*<readme>(.*)</readme>.*|\1|p' "$dir/${1,,}.nuspec")
  awk '/^```csharp$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' "$dir/$readme" > "$2"
  [ -s "$2" ] || fail "$1: no C# example in $readme"
}
extract_example MLNet.Attention "$work/ReadmeApp/Program.cs"
cp "$root/samples/data/ETTh1.csv.gz" "$work/ReadmeApp/"
build_and_run ReadmeApp
grep -q "^Test, 2785 windows: MSE " "$work/ReadmeApp.log" || fail "ReadmeApp: no metrics over the 2785 test windows"
grep -q "^Same forecast after reload: True$" "$work/ReadmeApp.log" || fail "ReadmeApp: reloaded forecast differs"
grep -q "^First test window: 672 forecast values" "$work/ReadmeApp.log" || fail "ReadmeApp: pipeline scoring"

step "ModulesReadmeApp: the MLNet.Attention.Modules package README example"
new_app ModulesReadmeApp MLNet.Attention.Modules
extract_example MLNet.Attention.Modules "$work/ModulesReadmeApp/Program.cs"
build_and_run ModulesReadmeApp
grep -q "^ELA 8x64x56x56, ACMIL slide logits 2x2$" "$work/ModulesReadmeApp.log" || fail "ModulesReadmeApp: output"

step "TransformsReadmeApp: the MLNet.Attention.Transforms package README example"
new_app TransformsReadmeApp MLNet.Attention.Transforms
check_restored MLNet.Attention.Transforms
extract_example MLNet.Attention.Transforms "$work/TransformsReadmeApp/Program.cs"
build_and_run TransformsReadmeApp
grep -q "^Features per image: Vector<Single, [0-9]*>$" "$work/TransformsReadmeApp.log" \
  || fail "TransformsReadmeApp: no Features vector column"
grep -q "^Same predictions after reload: True$" "$work/TransformsReadmeApp.log" \
  || fail "TransformsReadmeApp: reloaded predictions differ"

step "WholeSlideReadmeApp: the MLNet.Attention.WholeSlide package README example"
new_app WholeSlideReadmeApp MLNet.Attention.WholeSlide
check_restored MLNet.Attention.WholeSlide
# The package must not carry the 64 MB of ONNX graphs itself: its ResNet-18 dependency brings them.
[ "$(stat -c %s "$work/packages/MLNet.Attention.WholeSlide.$version.nupkg")" -lt 5000000 ] \
  || fail "MLNet.Attention.WholeSlide.$version.nupkg is over 5 MB (the ONNX graphs were packed into it)"
extract_example MLNet.Attention.WholeSlide "$work/WholeSlideReadmeApp/Program.cs"
cp "$root/samples/data/ihc-aperio-20x.tif" "$work/WholeSlideReadmeApp/"
build_and_run WholeSlideReadmeApp ihc-aperio-20x.tif
out="$work/WholeSlideReadmeApp/bin/Release/net10.0"
for f in DnnImageModels/ResNet18Onnx/ResNet18.onnx DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx; do
  [ -f "$out/$f" ] || fail "WholeSlideReadmeApp: $f is not in the app's output folder"
done
grep -q "^ihc-aperio-20x.tif: 1024 × 1024 px, .* tissue tiles at 20×$" "$work/WholeSlideReadmeApp.log" \
  || fail "WholeSlideReadmeApp: the slide and its tiles"
grep -q "^ResNet-18 tile features: 8 tiles × 512 values$" "$work/WholeSlideReadmeApp.log" \
  || fail "WholeSlideReadmeApp: no ResNet-18 features for 8 tiles"

step "OnnxReadmeApp: the MLNet.Attention.Onnx package README example"
# The example's scoring side: ApplyOnnxModel and ONNX Runtime's native library, as its README says to add.
new_app OnnxReadmeApp MLNet.Attention.Onnx Microsoft.ML.OnnxTransformer@5.0.1 Microsoft.ML.OnnxRuntime@1.31.1
check_restored MLNet.Attention.Onnx
extract_example MLNet.Attention.Onnx "$work/OnnxReadmeApp/Program.cs"
build_and_run OnnxReadmeApp
grep -q "^Exported: [0-9]* KB$" "$work/OnnxReadmeApp.log" || fail "OnnxReadmeApp: no exported model"
awk '/^ONNX vs model: max \|Score difference\| = / { found = 1; if ($NF + 0 > 1e-5) bad = 1 }
     END { exit !(found && !bad) }' "$work/OnnxReadmeApp.log" \
  || fail "OnnxReadmeApp: ONNX scores differ from the model's"

step "App: train, save, reload"
new_app App MLNet.Attention
cp "$root/nuget/smoke/App/"*.cs "$work/App/"
build_and_run App
grep -q "^SMOKE OK" "$work/App.log" || fail "App"

step "ModulesApp: every block, MLNet.Attention.Modules only"
new_app ModulesApp MLNet.Attention.Modules
cp "$root/nuget/smoke/ModulesApp/Program.cs" "$work/ModulesApp/Program.cs"
grep -q 'Include="Microsoft.ML' "$work/ModulesApp/ModulesApp.csproj" && fail "ModulesApp references ML.NET"
build_and_run ModulesApp
grep -q "^MODULES SMOKE OK$" "$work/ModulesApp.log" || fail "ModulesApp"
ls "$work/ModulesApp/bin/Release/net10.0" | grep -q '^Microsoft\.ML\.' && fail "ModulesApp: Microsoft.ML in its output"

step "TorchSharpApp: Microsoft.ML.TorchSharp 0.23.1 next to MLNet.Attention"
new_app TorchSharpApp MLNet.Attention Microsoft.ML.TorchSharp@0.23.1
cp "$root/nuget/smoke/TorchSharpApp/Program.cs" "$work/TorchSharpApp/Program.cs"
mkdir -p "$work/mlnet-resources"
# Its trainers download pretrained weights into MICROSOFTML_RESOURCE_PATH: a temporary folder, not the user's.
export MICROSOFTML_RESOURCE_PATH="$work/mlnet-resources"
build_and_run TorchSharpApp
grep -q "^TORCHSHARP SMOKE OK$" "$work/TorchSharpApp.log" || fail "TorchSharpApp"

echo "NUGET SMOKE OK ($((SECONDS - start)) s)"
