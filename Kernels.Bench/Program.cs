using GpuActivations;
using GpuActivations.Bench;

// Subcommands: (none) the main job, "accuracy" the sweep behind docs/numerics.md (--exhaustive: every float on the SIMD
// path; --device-agreement: the ILGPU kernels against the SIMD path), "plots" the activation plots,
// "bdn" the BenchmarkDotNet suites.
string command = "dotnet run -c Release --project Kernels.Bench" + (args.Length > 0 ? " -- " + string.Join(' ', args) : "");

if (args.Length > 1 && args[0] == "accuracy" && args[1] == "--exhaustive") return ExhaustiveSweep.Run(args[1..]);
if (args.Length > 1 && args[0] == "accuracy" && args[1] == "--device-agreement") return DeviceAgreement.Run(args[1..]);

if (args.Length > 0 && args[0] == "accuracy")
{
    int spread = args.Length > 1 ? int.Parse(args[1]) : 10_000_000;
    var x = Accuracy.Inputs(spread, spread / 4);
    using var acc = Accelerator.Create(AcceleratorKind.Cpu);
    Console.WriteLine($"Accuracy on {acc.Info}: {x.Length:N0} inputs per op");
    Console.WriteLine("| op | max ulp | at x |");
    Console.WriteLine("|---|---:|---:|");
    foreach (var row in Accuracy.Run(acc, x)) Console.WriteLine($"| {row.Op} | {row.MaxUlp} | {row.WorstInput:R} |");
    Console.WriteLine();
    Console.WriteLine($"fp16/bf16 storage on {acc.Info}: all 65536 bit patterns per op, against the reference rounded once to the format");
    Console.WriteLine("| op | format | max ulp (of the format) | at x | correctly rounded |");
    Console.WriteLine("|---|---|---:|---:|---:|");
    foreach (var row in StorageAccuracy.Run(acc))
        Console.WriteLine($"| {row.Op} | {row.Format} | {row.MaxUlp} | {row.WorstInput:R} | {row.CorrectlyRounded:P3} |");
    Console.WriteLine("Backward, f'(x) (dy = 1), in ulps of the summed terms' magnitude (ScalarReference.DerivativeScale):");
    Console.WriteLine("| op | max ulp | at x |");
    Console.WriteLine("|---|---:|---:|");
    foreach (var row in Accuracy.RunBackward(acc, x)) Console.WriteLine($"| {row.Op} | {row.MaxUlp:0.##} | {row.WorstInput:R} |");
    Console.WriteLine("Gated units, backward (gate = each input, up = dy = 1):");
    Console.WriteLine("| unit | dGate max ulp | at gate | dGate max ulp where \\|act'\\| >= 1/8 | dGate max abs error | dUp max ulp |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    foreach (var row in Accuracy.RunGated(acc, x))
        Console.WriteLine($"| {row.Unit} | {row.GateMaxUlp} | {row.GateWorstInput:R} | {row.GateMaxUlpAwayFromRoots} | {row.GateMaxAbsolute:0.0e0} | {row.UpMaxUlp} |");
    return 0;
}

if (args.Length > 0 && args[0] == "bdn") return BdnSuites.Run(args[1..]);

if (args.Length > 0 && args[0] == "plots")
{
    // plots [--out DIR] [--accelerators LIST]: the activation plots from each chosen accelerator's kernels (default: the
    // SIMD CPU path); the first one's go to DIR/plots, the others' to DIR/plots/LABEL.
    string outDir = "out";
    var selectors = new List<string>();
    for (int i = 1; i < args.Length; i++)
    {
        if (args[i] == "--out" && i + 1 < args.Length) outDir = args[++i];
        else if (args[i] == "--accelerators" && i + 1 < args.Length) selectors.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        else
        {
            Console.Error.WriteLine($"plots: unknown argument '{args[i]}' (plots [--out DIR] [--accelerators cpu,opencl,...]).");
            return 2;
        }
    }
    var chosen = MainJob.SelectAccelerators(selectors.Count > 0 ? selectors : ["cpu"], out string? error);
    if (error is not null) { Console.Error.WriteLine(error); return 2; }
    for (int i = 0; i < chosen.Count; i++)
    {
        using var acc = Accelerator.Create(chosen[i]);
        string dir = i == 0 ? Path.Combine(outDir, "plots") : Path.Combine(outDir, "plots", MainJob.Label(chosen[i]).Replace("#", "").ToLowerInvariant());
        var files = Plots.Activations(acc, dir);
        Console.WriteLine($"Wrote {files.Count} activation plots (SVG and PNG) from {MainJob.Label(chosen[i])}'s kernels to {dir}");
    }
    return 0;
}

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

BenchOptions options;
try { options = BenchOptions.Parse(args); }
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}
return MainJob.Run(options, command);
