using GpuActivations;
using GpuActivations.Bench;

if (args.Length > 0 && args[0] == "accuracy")
{
    int spread = args.Length > 1 ? int.Parse(args[1]) : 10_000_000;
    var x = Accuracy.Inputs(spread, spread / 4);
    using var acc = Accelerator.Create(AcceleratorKind.Cpu);
    Console.WriteLine($"Accuracy on {acc.Info}: {x.Length:N0} inputs per op");
    Console.WriteLine("| op | max ulp | at x |");
    Console.WriteLine("|---|---:|---:|");
    foreach (var row in Accuracy.Run(acc, x)) Console.WriteLine($"| {row.Op} | {row.MaxUlp} | {row.WorstInput:R} |");
}
