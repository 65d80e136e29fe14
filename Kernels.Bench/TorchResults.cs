using System.Text.Json;
using System.Text.Json.Serialization;

namespace GpuActivations.Bench;

/// <summary>
/// What Kernels.Bench/torch_peer.py prints: PyTorch eager timings of the same ops and shapes, keyed by our op
/// names and size labels, so the report can show them beside our rows.
/// </summary>
public sealed class TorchResults
{
    /// <summary>torch.__version__.</summary>
    [JsonPropertyName("torch_version")] public string TorchVersion { get; set; } = "";
    /// <summary>"cuda" or "cpu".</summary>
    [JsonPropertyName("device")] public string Device { get; set; } = "";
    /// <summary>torch.cuda.get_device_name() or the CPU.</summary>
    [JsonPropertyName("device_name")] public string DeviceName { get; set; } = "";
    /// <summary>When it ran (ISO 8601).</summary>
    [JsonPropertyName("date")] public string Date { get; set; } = "";
    /// <summary>One entry per op and shape.</summary>
    [JsonPropertyName("results")] public List<Entry> Results { get; set; } = [];
    /// <summary>The device-to-device copies, per byte count.</summary>
    [JsonPropertyName("copy")] public List<CopyEntry> Copy { get; set; } = [];

    /// <summary>One op at one shape.</summary>
    public sealed class Entry
    {
        /// <summary>Our op name (Sigmoid, SwiGlu, Softmax...).</summary>
        [JsonPropertyName("op")] public string Op { get; set; } = "";
        /// <summary>Our size label (64M, 4096x32000).</summary>
        [JsonPropertyName("size")] public string Size { get; set; } = "";
        /// <summary>The PyTorch expression timed.</summary>
        [JsonPropertyName("expression")] public string Expression { get; set; } = "";
        /// <summary>Bytes read + written by the op's contract (as ours).</summary>
        [JsonPropertyName("bytes")] public long Bytes { get; set; }
        /// <summary>Median seconds per call.</summary>
        [JsonPropertyName("median_s")] public double MedianSeconds { get; set; }
        /// <summary>Bytes / median, in GB/s.</summary>
        [JsonPropertyName("gbps")] public double GBps { get; set; }
    }

    /// <summary>A copy of some bytes.</summary>
    public sealed class CopyEntry
    {
        /// <summary>Bytes read + written.</summary>
        [JsonPropertyName("bytes")] public long Bytes { get; set; }
        /// <summary>Median seconds.</summary>
        [JsonPropertyName("median_s")] public double MedianSeconds { get; set; }
        /// <summary>GB/s.</summary>
        [JsonPropertyName("gbps")] public double GBps { get; set; }
    }

    /// <summary>Reads a results file.</summary>
    public static TorchResults Load(string path)
    {
        using var stream = File.OpenRead(path);
        return JsonSerializer.Deserialize<TorchResults>(stream) ?? throw new InvalidDataException($"{path}: empty JSON.");
    }

    /// <summary>Whether these results were taken on a device of <paramref name="kind"/> ("cuda" beside CUDA rows, "cpu" beside CPU rows).</summary>
    public bool Matches(AcceleratorKind kind) => string.Equals(Device.Split(':')[0], kind.ToString(), StringComparison.OrdinalIgnoreCase);

    /// <summary>The entry for <paramref name="op"/> at <paramref name="size"/>, if timed.</summary>
    public Entry? Find(string op, string size) =>
        Results.FirstOrDefault(e => string.Equals(e.Op, op, StringComparison.OrdinalIgnoreCase) && e.Size == size);
}
