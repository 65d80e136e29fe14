using System.Globalization;

namespace GpuActivations.Bench;

/// <summary>
/// The main job's options, parsed by hand (a dozen flags do not need a parser library):
/// <c>--ops</c>, <c>--sizes</c>, <c>--accelerators</c>, <c>--smoke</c>, <c>--out</c>, <c>--torch-results</c> and a few
/// switches to skip phases. Unknown flags are errors, so a typo cannot silently run the full benchmark.
/// </summary>
public sealed class BenchOptions
{
    /// <summary>Op names or group names to run (case-insensitive); empty means every op.</summary>
    public List<string> Ops { get; } = [];
    /// <summary>Element counts replacing the default elementwise / GLU sizes; empty keeps the defaults.</summary>
    public List<long> Counts { get; } = [];
    /// <summary>[rows, cols] shapes replacing the default softmax shapes; empty keeps the defaults.</summary>
    public List<(long Rows, long Cols)> Shapes { get; } = [];
    /// <summary>Accelerator selectors ("cpu", "opencl", "cuda", "opencl#1"); empty means every one present.</summary>
    public List<string> Accelerators { get; } = [];
    /// <summary>Tiny sizes and few repetitions: seconds, for CI.</summary>
    public bool Smoke { get; set; }
    /// <summary>
    /// The full sweep: every op at every default size, every sweep op at every size, the copy variants, the densest
    /// verification inputs. Without it the job verifies every op but benchmarks <see cref="Catalog.Representative"/>.
    /// </summary>
    public bool Full { get; set; }
    /// <summary>Every table column, whatever the width (the default lays tables out to 120 columns).</summary>
    public bool Wide { get; set; }
    /// <summary>Whether <see cref="MinSeconds"/> was given (otherwise it follows <see cref="Full"/>).</summary>
    public bool MinSecondsGiven { get; private set; }
    /// <summary>
    /// The report folder (report.md, results.json, plots/): "out", or $OUT/bench where $OUT is set (the device
    /// machine's folder whose files come back, see docs/gpu.md).
    /// </summary>
    public string OutDir { get; set; } = Environment.GetEnvironmentVariable("OUT") is { Length: > 0 } o ? Path.Combine(o, "bench") : "out";
    /// <summary>A JSON file written by torch_peer.py, shown beside our figures.</summary>
    public string? TorchResults { get; set; }
    /// <summary>Run the verification (default) or skip it.</summary>
    public bool Verify { get; set; } = true;
    /// <summary>Run the benchmarks (default) or stop after verifying.</summary>
    public bool Benchmark { get; set; } = true;
    /// <summary>Measure the CPU peers (naive loop, TensorPrimitives).</summary>
    public bool Peers { get; set; } = true;
    /// <summary>Measure the throughput-against-size sweep for the plots.</summary>
    public bool Sweep { get; set; } = true;
    /// <summary>Seconds each measurement runs at least (after warm-up); the smoke run uses far less.</summary>
    public double MinSeconds { get; set; } = 0.2;

    /// <summary>The usage text printed by <c>--help</c>.</summary>
    public const string Usage = """
        Kernels.Bench: verify every op on every accelerator present against the scalar reference, then benchmark a
        representative set of ops beside the copy bandwidth, naive loops, TensorPrimitives and ONNX Runtime
        (under 5 minutes on 2 cores, build included; --full benchmarks every op at every size and takes several times longer).

        usage: dotnet run -c Release --project Kernels.Bench -- [options]
               dotnet run -c Release --project Kernels.Bench -- accuracy [N]
               dotnet run -c Release --project Kernels.Bench -- accuracy --exhaustive [--ops LIST] [--range START:END] [--state FILE]
               dotnet run -c Release --project Kernels.Bench -- accuracy --device-agreement [--samples N] [--ops LIST] [--seed S] [--warp 4|32|64]
                   (N inputs per activation and direction, default 100000000, through the ILGPU kernels on ILGPU's CPU
                   accelerator and the SIMD path: bit-identical share, each form's max ulp; exit code 1 if any differ)
               dotnet run -c Release --project Kernels.Bench -- plots [--out DIR] [--accelerators LIST]
               dotnet run -c Release --project Kernels.Bench -- bdn [--inprocess] [BenchmarkDotNet options, e.g. --filter '*']

        options:
          --ops LIST            ops or groups, comma-separated, case-insensitive (default: all). Ops: every activation
                                (Sigmoid, Relu, Gelu, ...), their backward (SigmoidBackward, ...), PRelu, SwiGlu, GeGlu, GeGluTanh,
                                ReGlu, SwiGluPacked, ClampedSwiGlu, SwiGluInterleaved, ClampedSwiGluInterleaved, SwiGluBackward,
                                GeGluBackward, SwiGluPackedBackward, ClampedSwiGluInterleavedBackward, Softmax, LogSoftmax,
                                SoftmaxBackward, CrossEntropy. Groups: elementwise, glu, rowwise, relu-like, transcendental.
          --sizes LIST          element counts (16M, 1048576, 64k) for elementwise/GLU and RxC shapes (1024x32000) for
                                softmax; a family given none keeps its defaults
          --accelerators LIST   cpu, opencl, cuda, ilgpu, or kind#index (default: every accelerator present)
          --smoke               tiny sizes and few repetitions (about a minute; CI runs it); figures not meaningful
          --full                every op at every default size, the whole size sweep, the copy variants
          --wide                every table column (default: tables fit 120 columns)
          --out DIR             where report.md, results.json and plots/ go (default: out, or $OUT/bench when $OUT is set)
          --torch-results FILE  JSON from Kernels.Bench/torch_peer.py, shown beside our figures
          --min-time SECONDS    time each measurement runs at least after warm-up (default 0.2, with --full 0.4)
          --no-verify           skip the verification
          --verify-only         verify, do not benchmark
          --no-peers            skip the naive-loop, TensorPrimitives and ONNX Runtime peers
          --no-sweep            skip the size sweep behind the throughput plots
          --help                this text

        exit code: 0 when every op is within tolerance, 1 when one is not, 2 for bad arguments.
        """;

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> with a readable message on a bad one.</summary>
    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            string Value()
            {
                if (i + 1 >= args.Count) throw new ArgumentException($"{arg} needs a value.");
                return args[++i];
            }
            switch (arg)
            {
                case "--ops": options.Ops.AddRange(List(Value())); break;
                case "--sizes":
                    foreach (string size in List(Value()))
                    {
                        if (size.Contains('x', StringComparison.OrdinalIgnoreCase))
                        {
                            var parts = size.Split('x', 'X');
                            if (parts.Length != 2) throw new ArgumentException($"--sizes: '{size}' is not a RxC shape.");
                            options.Shapes.Add((Count(parts[0]), Count(parts[1])));
                        }
                        else options.Counts.Add(Count(size));
                    }
                    break;
                case "--accelerators": options.Accelerators.AddRange(List(Value())); break;
                case "--smoke": options.Smoke = true; break;
                case "--full": options.Full = true; break;
                case "--wide": options.Wide = true; break;
                case "--out": options.OutDir = Value(); break;
                case "--torch-results": options.TorchResults = Value(); break;
                case "--min-time":
                    options.MinSeconds = double.Parse(Value(), CultureInfo.InvariantCulture);
                    if (!(options.MinSeconds > 0)) throw new ArgumentException("--min-time must be positive.");
                    options.MinSecondsGiven = true;
                    break;
                case "--no-verify": options.Verify = false; break;
                case "--verify-only": options.Benchmark = false; break;
                case "--no-peers": options.Peers = false; break;
                case "--no-sweep": options.Sweep = false; break;
                default: throw new ArgumentException($"unknown option '{arg}' (see --help).");
            }
        }
        if (options.Full && options.Smoke) throw new ArgumentException("--full and --smoke contradict each other: pick one.");
        if (options.Full && !options.MinSecondsGiven) options.MinSeconds = 0.4;
        return options;
    }

    static IEnumerable<string> List(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Parses 16M, 64k, 1G (binary multiples) or a plain number.</summary>
    public static long Count(string text)
    {
        text = text.Trim();
        long scale = 1;
        if (text.Length > 0)
        {
            switch (char.ToUpperInvariant(text[^1]))
            {
                case 'K': scale = 1L << 10; text = text[..^1]; break;
                case 'M': scale = 1L << 20; text = text[..^1]; break;
                case 'G': scale = 1L << 30; text = text[..^1]; break;
            }
        }
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0)
            throw new ArgumentException($"'{text}' is not a positive count (e.g. 16M, 65536, 64k).");
        return checked(n * scale);
    }

    /// <summary>A count as people write it: 16M, 64k, or the number itself when it is not a round binary multiple.</summary>
    public static string Label(long n) =>
        n >= 1L << 20 && n % (1L << 20) == 0 ? $"{n >> 20}M"
        : n >= 1L << 10 && n % (1L << 10) == 0 ? $"{n >> 10}k"
        : n.ToString(CultureInfo.InvariantCulture);
}
