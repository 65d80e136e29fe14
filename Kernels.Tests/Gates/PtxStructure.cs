using System.Text.RegularExpressions;

namespace GpuActivations.Tests.Gates;

/// <summary>
/// What the PTX of one kernel holds that the gate checks: its 128-bit global loads and stores, approximate math
/// instructions (<c>ex2.approx</c>, <c>tanh.approx</c>, <c>lg2.approx</c>, any <c>.approx</c>) and double-precision
/// instructions. Comments and declarations are skipped; only instructions count.
/// </summary>
/// <param name="EntryName">The kernel's <c>.entry</c> name.</param>
/// <param name="VectorLoads">The count of <c>ld.global.v4</c> (and <c>ld.global.nc.v4</c>) instructions of 32-bit elements.</param>
/// <param name="VectorStores">The count of <c>st.global.v4</c> instructions of 32-bit elements.</param>
/// <param name="ApproximateInstructions">Every instruction with an <c>.approx</c> modifier.</param>
/// <param name="DoubleInstructions">Every instruction that computes on, converts to or from, or moves f64 values.</param>
public sealed record PtxStructure(string EntryName, int VectorLoads, int VectorStores,
    IReadOnlyList<string> ApproximateInstructions, IReadOnlyList<string> DoubleInstructions)
{
    static readonly Regex Entry = new(@"\.entry\s+([A-Za-z_$][\w$]*)", RegexOptions.Compiled);
    static readonly Regex VectorLoad = new(@"^ld\.global(\.nc)?(\.\w+)*\.v4\.(f32|b32|u32|s32)\b", RegexOptions.Compiled);
    static readonly Regex VectorStore = new(@"^st\.global(\.\w+)*\.v4\.(f32|b32|u32|s32)\b", RegexOptions.Compiled);
    static readonly Regex Approximate = new(@"^[\w.]*\.approx\b", RegexOptions.Compiled);
    static readonly Regex Double = new(@"^[a-z][\w.]*\.f64\b", RegexOptions.Compiled);

    /// <summary>Reads <paramref name="ptx"/>.</summary>
    public static PtxStructure Read(string ptx)
    {
        string entry = Entry.Match(ptx) is { Success: true } m ? m.Groups[1].Value : "?";
        int loads = 0, stores = 0;
        var approximate = new List<string>();
        var doubles = new List<string>();
        foreach (string raw in ptx.Split('\n'))
        {
            string line = raw.Trim();
            int comment = line.IndexOf("//", StringComparison.Ordinal);
            if (comment >= 0) line = line[..comment].TrimEnd();
            if (line.Length == 0 || line[0] == '.' || line[0] == '{' || line[0] == '}' || line.EndsWith(':')) continue;
            if (line[0] == '@') line = line[(line.IndexOf(' ') + 1)..].TrimStart(); // a predicated instruction
            if (VectorLoad.IsMatch(line)) loads++;
            if (VectorStore.IsMatch(line)) stores++;
            if (Approximate.IsMatch(line)) approximate.Add(line);
            if (Double.IsMatch(line) || line.StartsWith("cvt.", StringComparison.Ordinal) && line.Split(' ')[0].Contains(".f64", StringComparison.Ordinal))
                doubles.Add(line);
        }
        return new PtxStructure(entry, loads, stores, approximate, doubles);
    }
}
