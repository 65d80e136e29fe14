using GpuActivations;
using GpuActivations.Bench;

// Subcommands: (none) the main job, "accuracy" the sweep behind docs/numerics.md, "plots" the activation plots,
// "bdn" the BenchmarkDotNet suites.
string command = "dotnet run -c Release --project Kernels.Bench" + (args.Length > 0 ? " -- " + string.Join(' ', args) : "");

if (args.Length > 1 && args[0] == "accuracy" && args[1] == "--exhaustive") return ExhaustiveSweep.Run(args[1..]);

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
    string outDir = args.Length > 2 && args[1] == "--out" ? args[2] : "out";
    using var acc = Accelerator.Create(AcceleratorKind.Cpu);
    var files = ActivationPlots.Write(acc, Path.Combine(outDir, "plots"));
    Console.WriteLine($"Wrote {files.Count} activation plots to {Path.Combine(outDir, "plots")}");
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
