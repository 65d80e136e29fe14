using System.Globalization;
using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace GpuActivations.Bench;

/// <summary>
/// BenchmarkDotNet suites for rigorous statistics on the same ops as the main job:
/// <c>dotnet run -c Release --project Kernels.Bench -- bdn --filter '*'</c>. With <c>--inprocess</c> the
/// benchmarks run inside this process (BenchmarkDotNet's in-process emit toolchain), so they need no SDK: on a
/// machine with only the .NET runtime, <c>dotnet Kernels.Bench.dll bdn --inprocess --filter '*'</c>.
/// Every suite takes each accelerator present as a parameter and carries its copy baseline (Ratio = time over
/// the copy's, so 1/Ratio is the fraction of copy bandwidth); a GB/s column is added.
/// </summary>
public static class BdnSuites
{
    /// <summary>Runs BenchmarkDotNet's switcher on <paramref name="args"/> (minus our --inprocess).</summary>
    public static int Run(string[] args)
    {
        // Our --inprocess is BenchmarkDotNet's --inProcess: its in-process emit toolchain on whatever jobs the
        // command line asks for (e.g. --job short), so no SDK is needed to build a separate benchmark process.
        string[] translated = [.. args.Select(a => a.Equals("--inprocess", StringComparison.OrdinalIgnoreCase) ? "--inProcess" : a)];
        var config = ManualConfig.Create(DefaultConfig.Instance).AddColumn(new ThroughputColumn());
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(BdnSuites).Assembly).Run(translated, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }

    /// <summary>The labels of every accelerator present ("Cpu#0", ...), the suites' accelerator parameter.</summary>
    public static IEnumerable<string> AcceleratorLabels() => Accelerator.Enumerate().Select(MainJob.Label);

    /// <summary>Creates the accelerator a label names.</summary>
    public static Accelerator Create(string label) =>
        Accelerator.Create(Accelerator.Enumerate().First(i => MainJob.Label(i) == label));

    /// <summary>Bytes read + written by one call of a benchmark case, from its method name and parameters.</summary>
    public static long BytesOf(BenchmarkDotNet.Running.BenchmarkCase benchmark)
    {
        long elements = 0;
        foreach (var p in benchmark.Parameters.Items)
        {
            if (p.Name == "N") elements = Convert.ToInt64(p.Value, CultureInfo.InvariantCulture);
            if (p.Name == "Shape" && p.Value is string s)
            {
                var parts = s.Split('x');
                elements = long.Parse(parts[0], CultureInfo.InvariantCulture) * long.Parse(parts[1], CultureInfo.InvariantCulture);
            }
        }
        string method = benchmark.Descriptor.WorkloadMethod.Name;
        bool threeStreams = method.Contains("Glu", StringComparison.Ordinal) || benchmark.Descriptor.Type == typeof(GluSuite);
        return elements * (threeStreams ? 12 : 8);
    }

    /// <summary>GB/s = bytes read + written per call over the median time.</summary>
    sealed class ThroughputColumn : IColumn
    {
        public string Id => "GBps";
        public string ColumnName => "GB/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "Bytes read + written per second (10^9), from the median";
        public bool IsAvailable(Summary summary) => true;
        public bool IsDefault(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => false;
        public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
        public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var stats = summary[benchmarkCase]?.ResultStatistics;
            if (stats is null) return "-";
            return (BytesOf(benchmarkCase) / stats.Median).ToString("0.0", CultureInfo.InvariantCulture);   // bytes/ns = GB/s
        }
    }
}

/// <summary>Elementwise activations on every accelerator, beside a copy of the same bytes.</summary>
public class ActivationSuite
{
    Accelerator? accelerator;
    Workload? work;
    CopyBaseline? copy;

    /// <summary>The accelerator.</summary>
    [ParamsSource(nameof(Present))] public string Accelerator { get; set; } = "";
    /// <summary>Every accelerator present.</summary>
    public static IEnumerable<string> Present => BdnSuites.AcceleratorLabels();
    /// <summary>The activation.</summary>
    [Params("Relu", "Sigmoid", "Tanh", "Silu", "Gelu")] public string Op { get; set; } = "";
    /// <summary>Elements.</summary>
    [Params(16_384, 16_777_216)] public int N { get; set; }

    /// <summary>Allocates and fills.</summary>
    [GlobalSetup]
    public void Setup()
    {
        accelerator = BdnSuites.Create(Accelerator);
        var op = Catalog.Find(Op)!;
        work = Workload.Create(accelerator, op, Shape.Flat(N));
        copy = new CopyBaseline(accelerator, op.BytesMoved(Shape.Flat(N)));
    }

    /// <summary>Frees.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        work?.Dispose();
        copy?.Dispose();
        accelerator?.Dispose();
    }

    /// <summary>The copy of the same bytes.</summary>
    [Benchmark(Baseline = true)]
    public void Copy()
    {
        copy!.Run();
        copy.Synchronize();
    }

    /// <summary>The kernel.</summary>
    [Benchmark]
    public void Kernel()
    {
        work!.Run();
        work.Synchronize();
    }
}

/// <summary>SwiGLU (separate and packed) on every accelerator, beside a copy of the same bytes.</summary>
public class GluSuite
{
    Accelerator? accelerator;
    Workload? separate, packed;
    CopyBaseline? copy;

    /// <summary>The accelerator.</summary>
    [ParamsSource(nameof(Present))] public string Accelerator { get; set; } = "";
    /// <summary>Every accelerator present.</summary>
    public static IEnumerable<string> Present => BdnSuites.AcceleratorLabels();
    /// <summary>Outputs.</summary>
    [Params(16_777_216)] public int N { get; set; }

    /// <summary>Allocates and fills.</summary>
    [GlobalSetup]
    public void Setup()
    {
        accelerator = BdnSuites.Create(Accelerator);
        separate = Workload.Create(accelerator, Catalog.Find("SwiGlu")!, Shape.Flat(N));
        packed = Workload.Create(accelerator, Catalog.Find("SwiGluPacked")!, new Shape(N / 4096, 4096));
        copy = new CopyBaseline(accelerator, 12L * N);
    }

    /// <summary>Frees.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        separate?.Dispose();
        packed?.Dispose();
        copy?.Dispose();
        accelerator?.Dispose();
    }

    /// <summary>The copy of the same bytes.</summary>
    [Benchmark(Baseline = true)]
    public void Copy()
    {
        copy!.Run();
        copy.Synchronize();
    }

    /// <summary>silu(gate) * up from two buffers.</summary>
    [Benchmark]
    public void SwiGlu()
    {
        separate!.Run();
        separate.Synchronize();
    }

    /// <summary>silu(gate) * up from one packed [rows, 2d] buffer.</summary>
    [Benchmark]
    public void SwiGluPacked()
    {
        packed!.Run();
        packed.Synchronize();
    }
}

/// <summary>Softmax and log-softmax on every accelerator, beside a copy of the same bytes.</summary>
public class SoftmaxSuite
{
    Accelerator? accelerator;
    Workload? softmax, logSoftmax;
    CopyBaseline? copy;

    /// <summary>The accelerator.</summary>
    [ParamsSource(nameof(Present))] public string Accelerator { get; set; } = "";
    /// <summary>Every accelerator present.</summary>
    public static IEnumerable<string> Present => BdnSuites.AcceleratorLabels();
    /// <summary>rows x cols.</summary>
    [Params("1024x32000", "32x128256", "1x262144")] public string Shape { get; set; } = "";

    /// <summary>Allocates and fills.</summary>
    [GlobalSetup]
    public void Setup()
    {
        accelerator = BdnSuites.Create(Accelerator);
        var parts = Shape.Split('x');
        var shape = new Shape(long.Parse(parts[0], CultureInfo.InvariantCulture), long.Parse(parts[1], CultureInfo.InvariantCulture));
        softmax = Workload.Create(accelerator, Catalog.Find("Softmax")!, shape);
        logSoftmax = Workload.Create(accelerator, Catalog.Find("LogSoftmax")!, shape);
        copy = new CopyBaseline(accelerator, 8 * shape.Elements);
    }

    /// <summary>Frees.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        softmax?.Dispose();
        logSoftmax?.Dispose();
        copy?.Dispose();
        accelerator?.Dispose();
    }

    /// <summary>The copy of the same bytes.</summary>
    [Benchmark(Baseline = true)]
    public void Copy()
    {
        copy!.Run();
        copy.Synchronize();
    }

    /// <summary>Row-wise softmax.</summary>
    [Benchmark]
    public void Softmax()
    {
        softmax!.Run();
        softmax.Synchronize();
    }

    /// <summary>Row-wise log-softmax.</summary>
    [Benchmark]
    public void LogSoftmax()
    {
        logSoftmax!.Run();
        logSoftmax.Synchronize();
    }
}

/// <summary>
/// Sigmoid and Tanh on the CPU span API against TensorPrimitives, a naive loop and ONNX Runtime (Ratio over the naive
/// loop). TensorPrimitives and the naive loop are single-threaded; CpuKernels is single-threaded at 16k (in cache)
/// and uses every core at 16M; ONNX Runtime has as many intra-op threads as there are cores.
/// </summary>
public class CpuPeerSuite
{
    float[] x = [], y = [];
    Activation activation = Activation.Sigmoid;
    Peers.Instance? naive;
    OnnxPeer? onnx;

    /// <summary>Sigmoid or Tanh.</summary>
    [Params("Sigmoid", "Tanh")] public string Op { get; set; } = "";
    /// <summary>Elements.</summary>
    [Params(16_384, 16_777_216)] public int N { get; set; }

    /// <summary>Allocates and fills.</summary>
    [GlobalSetup]
    public void Setup()
    {
        x = new float[N];
        y = new float[N];
        Workload.Fill(x, new Random(3), 8f);
        activation = Op == "Tanh" ? Activation.Tanh : Activation.Sigmoid;
        naive = Peers.Naive(Catalog.Find(Op)!, Shape.Flat(N));
        onnx = OnnxPeer.Create(Catalog.Find(Op)!, Shape.Flat(N));
    }

    /// <summary>Frees ONNX Runtime's session.</summary>
    [GlobalCleanup]
    public void Cleanup() => onnx?.Dispose();

    /// <summary>ONNX Runtime's one-node model (CPU execution provider).</summary>
    [Benchmark]
    public void OnnxRuntimeOp() => onnx!.Run();

    /// <summary>A plain for loop with MathF.</summary>
    [Benchmark(Baseline = true)]
    public void NaiveLoop() => naive!.Run();

    /// <summary>TensorPrimitives.Sigmoid / Tanh.</summary>
    [Benchmark]
    public void TensorPrimitivesOp()
    {
        if (Op == "Tanh") TensorPrimitives.Tanh(x, y);
        else TensorPrimitives.Sigmoid(x, y);
    }

    /// <summary>CpuKernels.Apply.</summary>
    [Benchmark]
    public void CpuKernelsOp() => CpuKernels.Apply(activation, x, y);
}

/// <summary>
/// GPU against CPU side by side: the same op on each ILGPU accelerator present (CUDA, OpenCL, ILGPU's CPU
/// accelerator) and on the SIMD CPU path, the baseline, at several sizes. Ratio = the ILGPU accelerator's time over the
/// SIMD path's at the same size (below 1: the accelerator is faster); each call includes its synchronize, and the data
/// stays on its device, so transfers are not counted.
/// </summary>
public class DeviceSuite
{
    Accelerator? simd, device;
    Workload? onSimd, onDevice;

    /// <summary>The ILGPU accelerator beside the SIMD path.</summary>
    [ParamsSource(nameof(IlgpuPresent))] public string Device { get; set; } = "";
    /// <summary>Every ILGPU accelerator present (every one but the SIMD CPU path).</summary>
    public static IEnumerable<string> IlgpuPresent => Accelerator.Enumerate().Where(i => i.Kind != AcceleratorKind.Cpu).Select(MainJob.Label);
    /// <summary>The op (an elementwise one and the softmax row op are both shaped by N).</summary>
    [Params("Gelu", "Softmax")] public string Op { get; set; } = "";
    /// <summary>Elements (softmax: rows of 4096).</summary>
    [Params(65_536, 1_048_576, 16_777_216)] public int N { get; set; }

    Shape ShapeOf(BenchOp op) => op.IsRowwise ? new Shape(N / 4096, 4096) : Shape.Flat(N);

    /// <summary>Creates both accelerators and their workloads on the same inputs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var op = Catalog.Find(Op) ?? throw new ArgumentException($"unknown op '{Op}'.", nameof(Op));
        simd = GpuActivations.Accelerator.Create(AcceleratorKind.Cpu);
        device = BdnSuites.Create(Device);
        onSimd = Workload.Create(simd, op, ShapeOf(op));
        onDevice = Workload.Create(device, op, ShapeOf(op));
    }

    /// <summary>Frees.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        onSimd?.Dispose();
        onDevice?.Dispose();
        simd?.Dispose();
        device?.Dispose();
    }

    /// <summary>The op on the SIMD CPU path.</summary>
    [Benchmark(Baseline = true)]
    public void SimdCpu()
    {
        onSimd!.Run();
        onSimd.Synchronize();
    }

    /// <summary>The op on the ILGPU accelerator.</summary>
    [Benchmark]
    public void IlgpuAccelerator()
    {
        onDevice!.Run();
        onDevice.Synchronize();
    }
}
