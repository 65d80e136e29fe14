using System.Diagnostics;
using System.Text.Json;
using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>
/// The exhaustive accuracy sweep (<c>accuracy --exhaustive</c>): every one of the 2^32 float bit patterns (or a
/// <c>--range</c> of them) through every elementwise activation's forward and derivative on the SIMD path
/// (<see cref="CpuKernels"/>), against the double reference (<see cref="ScalarReference"/>), the reference evaluated on
/// every core. Forward results are measured in plain ulps, subnormals counted (no allowance for flushing); derivatives in
/// ulps of the summed terms' magnitude (<see cref="ScalarReference.DerivativeScale"/>), as the sampled sweep does.
/// Work goes in chunks of 2^24 inputs; after each chunk the state file records every op's progress and maxima, so an
/// interrupted run resumes where it stopped (same range and ops), op by op.
/// </summary>
public static class ExhaustiveSweep
{
    const long ChunkSize = 1L << 24;

    /// <summary>One op's progress: the next bit pattern to run, the largest error so far and its input.</summary>
    public sealed class OpState
    {
        /// <summary>The next bit pattern (as an unsigned 32-bit value) to run.</summary>
        public long Next { get; set; }
        /// <summary>The largest error so far, in ulps.</summary>
        public double MaxUlp { get; set; }
        /// <summary>The input's bit pattern where it occurred.</summary>
        public uint WorstBits { get; set; }
        /// <summary>Inputs checked so far.</summary>
        public long Done { get; set; }
        /// <summary>Seconds spent on this op so far.</summary>
        public double Seconds { get; set; }
    }

    /// <summary>The state file's form: an infinite error (a finite result where the exact one overflows, or the reverse) is
    /// written as "Infinity", so the sweep records it and goes on.</summary>
    static readonly JsonSerializerOptions StateJson = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Parses the options after <c>accuracy --exhaustive</c> and runs the sweep; returns the exit code.</summary>
    public static int Run(string[] args)
    {
        long start = 0, end = 1L << 32;
        string statePath = "exhaustive-state.json";
        HashSet<string>? only = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--exhaustive": break;
                case "--range":
                    var parts = args[++i].Split(':');
                    start = ParseBits(parts[0]);
                    end = ParseBits(parts[1]);
                    break;
                case "--state": statePath = args[++i]; break;
                case "--ops": only = new HashSet<string>(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries), StringComparer.OrdinalIgnoreCase); break;
                default:
                    Console.Error.WriteLine($"accuracy --exhaustive: unknown option {args[i]} (options: --range START:END as bit patterns, hex 0x... or decimal, END exclusive; --ops LIST; --state FILE)");
                    return 2;
            }
        }
        if (!(0 <= start && start < end && end <= 1L << 32)) { Console.Error.WriteLine("--range must satisfy 0 <= START < END <= 2^32"); return 2; }

        var state = File.Exists(statePath)
            ? JsonSerializer.Deserialize<Dictionary<string, OpState>>(File.ReadAllText(statePath), StateJson) ?? []
            : new Dictionary<string, OpState>();
        var ops = OpForm.Select(only);
        string Key(OpForm op) => $"{op} [{start:X}, {end:X})";

        Console.WriteLine($"Exhaustive sweep over bit patterns [0x{start:X}, 0x{end:X}) ({end - start:N0} inputs) x {ops.Count} op forms, on {Environment.ProcessorCount} cores; state in {statePath}");
        var x = new float[ChunkSize];
        var y = new float[ChunkSize];
        var ones = Enumerable.Repeat(1f, (int)ChunkSize).ToArray();
        var total = Stopwatch.StartNew();
        long doneThisRun = 0;
        long remainingAll = ops.Sum(op => end - (state.TryGetValue(Key(op), out var s) ? s.Next : start));
        foreach (var op in ops)
        {
            string key = Key(op);
            if (!state.TryGetValue(key, out var s)) state[key] = s = new OpState { Next = start };
            if (s.Next >= end) { Report(key, s, end - start); continue; }
            while (s.Next < end)
            {
                var chunk = Stopwatch.StartNew();
                int n = (int)Math.Min(ChunkSize, end - s.Next);
                long first = s.Next;
                Parallel.For(0, Environment.ProcessorCount, part =>
                {
                    int lo = (int)((long)n * part / Environment.ProcessorCount), hi = (int)((long)n * (part + 1) / Environment.ProcessorCount);
                    for (int i = lo; i < hi; i++) x[i] = BitConverter.UInt32BitsToSingle((uint)(first + i));
                });
                op.RunSimd(x.AsSpan(0, n), ones.AsSpan(0, n), y.AsSpan(0, n));
                var (worst, at) = Worst(op, x, y, n);
                if (worst > s.MaxUlp) { s.MaxUlp = worst; s.WorstBits = BitConverter.SingleToUInt32Bits(x[at]); }
                s.Next = first + n;
                s.Done += n;
                s.Seconds += chunk.Elapsed.TotalSeconds;
                doneThisRun += n;
                remainingAll -= n;
                File.WriteAllText(statePath, JsonSerializer.Serialize(state, StateJson));
                double rate = doneThisRun / total.Elapsed.TotalSeconds;
                Console.WriteLine($"  {key}: {(double)(s.Next - start) / (end - start):P1}, max {s.MaxUlp:0.##} ulp at {BitConverter.UInt32BitsToSingle(s.WorstBits):R}; "
                    + $"{n / chunk.Elapsed.TotalSeconds / 1e6:0.0} M inputs/s; this op {TimeSpan.FromSeconds((end - s.Next) / (n / chunk.Elapsed.TotalSeconds)):hh\\:mm\\:ss} left, "
                    + $"all {TimeSpan.FromSeconds(remainingAll / rate):d\\.hh\\:mm\\:ss} left");
            }
            Report(key, s, end - start);
        }
        Console.WriteLine($"| op | max ulp | at x | inputs | seconds |");
        Console.WriteLine($"|---|---:|---:|---:|---:|");
        foreach (var op in ops)
        {
            var s = state[Key(op)];
            Console.WriteLine($"| {op} | {s.MaxUlp:0.##} | {BitConverter.UInt32BitsToSingle(s.WorstBits):R} | {s.Done:N0} | {s.Seconds:0} |");
        }
        return 0;
    }

    static void Report(string key, OpState s, long count)
        => Console.WriteLine($"{key}: done, {s.Done:N0} of {count:N0} inputs, max {s.MaxUlp:0.##} ulp at {BitConverter.UInt32BitsToSingle(s.WorstBits):R} ({s.Seconds:0} s)");

    static long ParseBits(string text)
        => text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? Convert.ToInt64(text[2..], 16) : long.Parse(text, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The worst error of the chunk and its index, the reference evaluated on every core.</summary>
    static (double Worst, int At) Worst(OpForm op, float[] x, float[] y, int n)
    {
        int parts = Environment.ProcessorCount * 4;
        var worst = new double[parts];
        var at = new int[parts];
        Parallel.For(0, parts, part =>
        {
            int lo = (int)((long)n * part / parts), hi = (int)((long)n * (part + 1) / parts);
            double w = 0;
            int wi = lo;
            for (int i = lo; i < hi; i++)
            {
                double d = op.Error(x[i], y[i]);
                if (d > w) { w = d; wi = i; }
            }
            worst[part] = w;
            at[part] = wi;
        });
        int best = Array.IndexOf(worst, worst.Max());
        return (worst[best], at[best]);
    }

    /// <summary>Ulps between actual and the exact value rounded to float; NaN matches NaN; subnormals count like any float.</summary>
    internal static double StrictUlp(float actual, double expected)
    {
        float e = (float)expected;
        if (float.IsNaN(e) || float.IsNaN(actual)) return float.IsNaN(e) && float.IsNaN(actual) ? 0 : double.PositiveInfinity;
        if (float.IsInfinity(e) || float.IsInfinity(actual)) return e == actual ? 0 : double.PositiveInfinity;
        static long Ordinal(float f) { int bits = BitConverter.SingleToInt32Bits(f); return bits < 0 ? -(long)(bits & 0x7FFFFFFF) : bits; }
        return Math.Abs(Ordinal(actual) - Ordinal(e));
    }
}

/// <summary>
/// One activation in one direction, as the exhaustive sweep and the device agreement check run it: the forward, or the
/// derivative f'(x) (<see cref="CpuKernels.ActivationBackward"/> with dy = 1), with the error metric that direction is held to.
/// </summary>
/// <param name="Activation">The activation, with its default parameters.</param>
/// <param name="Id">Its reference id.</param>
/// <param name="Derivative">The derivative (true) or the forward (false).</param>
public readonly record struct OpForm(Activation Activation, ActivationId Id, bool Derivative)
{
    /// <summary>
    /// Both directions of every activation of <see cref="Catalog.Activations"/> whose name (with or without its parameters,
    /// case-insensitive) is in <paramref name="only"/>; every activation when it is null.
    /// </summary>
    public static List<OpForm> Select(IReadOnlySet<string>? only) =>
    [
        .. Catalog.Activations
            .Where(a => only is null || only.Contains(a.Activation.ToString()) || only.Contains(a.Activation.ToString().Split('(')[0]))
            .SelectMany(a => new[] { new OpForm(a.Activation, a.Reference, false), new OpForm(a.Activation, a.Reference, true) }),
    ];

    /// <summary>The SIMD path's result for <paramref name="x"/>: f(x), or f'(x) from the backward pass with <paramref name="ones"/> as dy.</summary>
    public void RunSimd(ReadOnlySpan<float> x, ReadOnlySpan<float> ones, Span<float> y)
    {
        if (Derivative) CpuKernels.ActivationBackward(Activation, x, ones, y);
        else CpuKernels.Apply(Activation, x, y);
    }

    /// <summary>
    /// The error of result <paramref name="y"/> at <paramref name="x"/> against the double reference: plain ulps with
    /// subnormals counted forward; for the derivative, ulps of <see cref="ScalarReference.DerivativeScale"/> (the summed
    /// terms' magnitude, so a result next to f''s zero is not judged by the ulp of a cancelled value).
    /// </summary>
    public double Error(float x, float y)
    {
        double a = Activation.Alpha, b = Activation.Beta, t = Activation.Threshold;
        return Derivative
            ? ErrorMetrics.ScaledUlpDistance(y, ScalarReference.Derivative(Id, x, a, b, t), ScalarReference.DerivativeScale(Id, x, a, b, t))
            : ExhaustiveSweep.StrictUlp(y, ScalarReference.Evaluate(Id, x, a, b, t));
    }

    /// <summary>"Gelu" forward, "Gelu'" for the derivative (parameters included, e.g. "LeakyRelu(0.01)'").</summary>
    public override string ToString() => $"{Activation}{(Derivative ? "'" : "")}";
}
