using System.Diagnostics;
using System.Globalization;
using ILGPU.Runtime.CPU;

namespace GpuActivations.Bench;

/// <summary>
/// The device agreement check (<c>accuracy --device-agreement</c>): sampled inputs through every elementwise activation's
/// forward and derivative twice, once as the ILGPU kernels (device form, run on ILGPU's CPU accelerator, which executes
/// them thread by thread as a GPU would) and once on the SIMD path (<see cref="CpuKernels"/>), counting bit-identical
/// results and measuring both against the double reference with the exhaustive sweep's metrics (<see cref="OpForm.Error"/>).
/// The exhaustive sweep covers the SIMD path only; this check is what carries its results over to the kernels.
/// Inputs are a pure function of the seed and the input's index (half random bit patterns, every float class included;
/// half uniform in [-30, 30], where the functions bend), so a run is reproducible and any input can be regenerated.
/// </summary>
public static class DeviceAgreement
{
    /// <summary>Inputs per chunk: large enough that a kernel launch's cost vanishes, small enough for steady progress.</summary>
    public const int ChunkSize = 1 << 22;

    /// <summary>How many differing inputs a result keeps, to show where the forms part.</summary>
    public const int DifferencesKept = 8;

    /// <summary>The ILGPU CPU accelerator shapes by warp size (those the test fixtures cover).</summary>
    public static IReadOnlyDictionary<int, CPUDevice> Shapes { get; } = new Dictionary<int, CPUDevice>
    {
        [4] = CPUDevice.Default,
        [32] = CPUDevice.Nvidia,
        [64] = CPUDevice.LegacyAMD,
    };

    /// <summary>
    /// The default shape: warp 4 (ILGPU's default CPU device, 4 warps of 4 threads on one multiprocessor), the fastest of
    /// the three on the 2-core dev machine, where the kernels' time is ILGPU's thread-by-thread emulation (about 98% of a
    /// chunk) and grows with the threads a group emulates (sigmoid and ReLU, 2^22-input chunks: warp 4 5.4-9.0 s,
    /// warp 32 6.9-11.6 s, warp 64 8.3-11.2 s).
    /// </summary>
    public const int DefaultWarp = 4;

    /// <summary>One input where the two forms differ.</summary>
    /// <param name="X">The input.</param>
    /// <param name="Device">The ILGPU kernel's result.</param>
    /// <param name="Simd">The SIMD path's result.</param>
    /// <param name="DeviceUlp">The kernel's error against the reference (the op's metric).</param>
    /// <param name="SimdUlp">The SIMD path's error against the reference.</param>
    public sealed record Difference(float X, float Device, float Simd, double DeviceUlp, double SimdUlp);

    /// <summary>What a run of one op form found; chunks add up with <see cref="Add"/>.</summary>
    public sealed class Result
    {
        /// <summary>Inputs compared.</summary>
        public long Inputs { get; set; }
        /// <summary>Inputs whose results are the same bits (any NaN matching any NaN).</summary>
        public long Identical { get; set; }
        /// <summary>The kernel's largest error over all inputs, in the op's metric.</summary>
        public double DeviceMaxUlp { get; set; }
        /// <summary>The input of <see cref="DeviceMaxUlp"/>.</summary>
        public float DeviceWorstInput { get; set; }
        /// <summary>The SIMD path's largest error over all inputs (equal to the kernel's where every result is identical).</summary>
        public double SimdMaxUlp { get; set; }
        /// <summary>The first differing inputs, up to <see cref="DifferencesKept"/>.</summary>
        public List<Difference> Differences { get; } = [];
        /// <summary>Seconds spent, both forms and the reference.</summary>
        public double Seconds { get; set; }

        /// <summary>Inputs whose results differ.</summary>
        public long Differing => Inputs - Identical;

        /// <summary>Adds <paramref name="other"/>'s counts, maxima and differences to this one.</summary>
        public void Add(Result other)
        {
            Inputs += other.Inputs;
            Identical += other.Identical;
            if (other.DeviceMaxUlp > DeviceMaxUlp) { DeviceMaxUlp = other.DeviceMaxUlp; DeviceWorstInput = other.DeviceWorstInput; }
            SimdMaxUlp = Math.Max(SimdMaxUlp, other.SimdMaxUlp);
            Differences.AddRange(other.Differences.Take(DifferencesKept - Differences.Count));
            Seconds += other.Seconds;
        }
    }

    /// <summary>
    /// Input <paramref name="index"/> of the sample drawn with <paramref name="seed"/>: even indices a uniformly random bit
    /// pattern (NaNs, infinities and subnormals included), odd ones uniform in [-30, 30]. A counter-based hash (SplitMix64's
    /// finaliser) rather than a stream generator, so chunks fill in parallel and the same inputs come back on any machine.
    /// </summary>
    public static float Input(ulong seed, long index)
    {
        ulong z = seed + (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (index & 1) == 0
            ? BitConverter.UInt32BitsToSingle((uint)z)
            : (float)(-30.0 + 60.0 * ((z >> 11) * (1.0 / (1UL << 53))));
    }

    /// <summary>
    /// Compares the kernel's results <paramref name="device"/> with the SIMD path's <paramref name="simd"/> for the first
    /// <paramref name="n"/> inputs <paramref name="x"/>, the reference evaluated on every core (once per input, twice where
    /// the forms differ).
    /// </summary>
    public static Result Compare(OpForm op, float[] x, float[] device, float[] simd, int n)
    {
        int parts = Environment.ProcessorCount * 4;
        var results = new Result[parts];
        Parallel.For(0, parts, part =>
        {
            var r = new Result();
            int lo = (int)((long)n * part / parts), hi = (int)((long)n * (part + 1) / parts);
            for (int i = lo; i < hi; i++)
            {
                double deviceUlp = op.Error(x[i], device[i]);
                bool same = BitConverter.SingleToUInt32Bits(device[i]) == BitConverter.SingleToUInt32Bits(simd[i])
                    || (float.IsNaN(device[i]) && float.IsNaN(simd[i]));
                double simdUlp = same ? deviceUlp : op.Error(x[i], simd[i]);
                if (same) r.Identical++;
                else if (r.Differences.Count < DifferencesKept) r.Differences.Add(new Difference(x[i], device[i], simd[i], deviceUlp, simdUlp));
                if (deviceUlp > r.DeviceMaxUlp) { r.DeviceMaxUlp = deviceUlp; r.DeviceWorstInput = x[i]; }
                r.SimdMaxUlp = Math.Max(r.SimdMaxUlp, simdUlp);
            }
            r.Inputs = hi - lo;
            results[part] = r;
        });
        var total = new Result();
        foreach (var r in results) total.Add(r);
        return total;
    }

    /// <summary>
    /// Runs <paramref name="samples"/> inputs of the <paramref name="seed"/>'s sample through <paramref name="op"/> on
    /// <paramref name="device"/> (an accelerator running the ILGPU kernels) and on the SIMD path, in chunks of
    /// <paramref name="chunkSize"/>; <paramref name="progress"/> hears the running totals after each chunk (so a run cut
    /// short still tells what it compared).
    /// </summary>
    public static Result Check(Accelerator device, OpForm op, long samples, ulong seed, Action<Result>? progress = null, int chunkSize = ChunkSize)
    {
        int size = (int)Math.Min(chunkSize, samples);
        float[] x = new float[size], ones = new float[size], yDevice = new float[size], ySimd = new float[size];
        Array.Fill(ones, 1f);
        using var xb = device.Allocate<float>(size);
        using var onesb = device.Allocate<float>(ones);
        using var yb = device.Allocate<float>(size);
        var total = new Result();
        for (long first = 0; first < samples; first += size)
        {
            var clock = Stopwatch.StartNew();
            int n = (int)Math.Min(size, samples - first);
            Parallel.For(0, Environment.ProcessorCount, part =>
            {
                int lo = (int)((long)n * part / Environment.ProcessorCount), hi = (int)((long)n * (part + 1) / Environment.ProcessorCount);
                for (int i = lo; i < hi; i++) x[i] = Input(seed, first + i);
            });
            xb.Slice(0, n).CopyFrom(x.AsSpan(0, n));
            if (op.Derivative) device.ActivationBackward(op.Activation, xb.Slice(0, n), onesb.Slice(0, n), yb.Slice(0, n));
            else device.Apply(op.Activation, xb.Slice(0, n), yb.Slice(0, n));
            yb.Slice(0, n).CopyTo(yDevice.AsSpan(0, n));
            op.RunSimd(x.AsSpan(0, n), ones.AsSpan(0, n), ySimd.AsSpan(0, n));
            var chunk = Compare(op, x, yDevice, ySimd, n);
            chunk.Seconds = clock.Elapsed.TotalSeconds;
            total.Add(chunk);
            progress?.Invoke(total);
        }
        return total;
    }

    /// <summary>An accelerator running the ILGPU kernels on ILGPU's CPU accelerator of warp size <paramref name="warp"/> (4, 32 or 64).</summary>
    public static Accelerator CreateDevice(int warp) => Kernels.IlgpuDevices.CreateCpu(Shapes[warp], runKernels: true);

    /// <summary>The usage line of <c>accuracy --device-agreement</c>.</summary>
    public const string Usage = "accuracy --device-agreement [--samples N] [--ops LIST] [--seed S] [--warp 4|32|64]";

    /// <summary>Parses the options after <c>accuracy --device-agreement</c>, runs the check and prints the table; returns the exit code (1 when any result differs).</summary>
    public static int Run(string[] args)
    {
        long samples = 100_000_000;
        ulong seed = 1;
        int warp = DefaultWarp;
        HashSet<string>? only = null;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                switch (args[i])
                {
                    case "--device-agreement": break;
                    case "--samples": samples = BenchOptions.Count(Value()); break;
                    case "--seed": seed = ulong.Parse(Value(), CultureInfo.InvariantCulture); break;
                    case "--warp":
                        warp = int.Parse(Value(), CultureInfo.InvariantCulture);
                        if (!Shapes.ContainsKey(warp)) throw new ArgumentException("--warp must be 4, 32 or 64.");
                        break;
                    case "--ops": only = new HashSet<string>(Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.OrdinalIgnoreCase); break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"{e.Message} (usage: {Usage})");
            return 2;
        }
        var ops = OpForm.Select(only);
        if (ops.Count == 0) { Console.Error.WriteLine($"--ops matched no activation (activations: {string.Join(", ", Catalog.Activations.Select(a => a.Activation))})"); return 2; }

        using var device = CreateDevice(warp);
        Console.WriteLine($"Device agreement: {samples:N0} inputs per op form (seed {seed}) x {ops.Count} op forms; ILGPU kernels on {device.Info.Details} "
            + $"against the SIMD path, reference on {Environment.ProcessorCount} cores");
        var all = Stopwatch.StartNew();
        var results = new List<(OpForm Op, Result Result)>();
        long totalInputs = samples * ops.Count, doneBefore = 0;
        foreach (var op in ops)
        {
            var lastPrint = Stopwatch.StartNew();
            var clock = Stopwatch.StartNew();
            var result = Check(device, op, samples, seed, sofar =>
            {
                long done = sofar.Inputs;
                if (lastPrint.Elapsed.TotalSeconds < 10 && done < samples) return;
                lastPrint.Restart();
                double rate = done / clock.Elapsed.TotalSeconds, overall = (doneBefore + done) / all.Elapsed.TotalSeconds;
                Console.WriteLine($"  {op}: {(double)done / samples:P0}, {sofar.Identical:N0} of {done:N0} bit-identical, device max {sofar.DeviceMaxUlp:0.##} ulp at {sofar.DeviceWorstInput:R}; "
                    + $"{rate / 1e6:0.00} M inputs/s; this op {TimeSpan.FromSeconds((samples - done) / rate):hh\\:mm\\:ss} left, "
                    + $"all {TimeSpan.FromSeconds((totalInputs - doneBefore - done) / overall):hh\\:mm\\:ss} left");
            });
            doneBefore += samples;
            results.Add((op, result));
            Console.WriteLine($"{op}: {result.Identical:N0} of {result.Inputs:N0} bit-identical, device max {result.DeviceMaxUlp:0.##} ulp at {result.DeviceWorstInput:R}, "
                + $"SIMD max {result.SimdMaxUlp:0.##} ulp ({result.Seconds:0} s)");
            foreach (var d in result.Differences)
                Console.WriteLine($"    differs at x = {d.X:R}: device {d.Device:R} ({d.DeviceUlp:0.##} ulp), SIMD {d.Simd:R} ({d.SimdUlp:0.##} ulp)");
        }
        Console.WriteLine();
        Console.WriteLine($"Device agreement, {device.Info.Details}, {samples:N0} inputs per op form, seed {seed}, {all.Elapsed.TotalSeconds:0} s in all:");
        Console.WriteLine("| op | inputs | bit-identical | differing | device max ulp | at x | SIMD max ulp | seconds |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (op, r) in results)
            Console.WriteLine($"| {op} | {r.Inputs:N0} | {(double)r.Identical / r.Inputs:P4} | {r.Differing:N0} | {r.DeviceMaxUlp:0.##} | {r.DeviceWorstInput:R} | {r.SimdMaxUlp:0.##} | {r.Seconds:0} |");
        return results.All(r => r.Result.Differing == 0) ? 0 : 1;
    }
}
