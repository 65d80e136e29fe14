using System.Text.RegularExpressions;

namespace GpuActivations.Tests.Gates;

/// <summary>
/// What the PTX of one kernel holds that the gate checks: its 128-bit global loads and stores, approximate math
/// instructions (<c>ex2.approx</c>, <c>tanh.approx</c>, <c>lg2.approx</c>, any <c>.approx</c>) and double-precision
/// instructions. Comments and declarations are skipped; only instructions count.
/// </summary>
/// <param name="EntryName">The kernel's <c>.entry</c> name.</param>
/// <param name="VectorLoads">
/// The count of 128-bit loads of four 32-bit elements from global memory: <c>ld.global.v4</c>, or <c>ld.v4</c> in the generic
/// address space, which is what ILGPU emits for a kernel's views at its default optimisation level (O1); ptxas makes
/// either a 128-bit load (<c>LDG.E.128</c> / <c>LD.E.128</c>).
/// </param>
/// <param name="VectorLoadsInLoops">Those of <paramref name="VectorLoads"/> inside a loop (between a label and a later branch back to it).</param>
/// <param name="GlobalVectorLoads">Those of <paramref name="VectorLoads"/> that name the global state space (<c>ld.global.v4</c>).</param>
/// <param name="VectorStores">The count of 128-bit stores (<c>st.global.v4</c> or generic <c>st.v4</c>) of 32-bit elements.</param>
/// <param name="ApproximateInstructions">Every instruction with an <c>.approx</c> modifier.</param>
/// <param name="DoubleInstructions">Every instruction that computes on, converts to or from, or moves f64 values.</param>
public sealed record PtxStructure(string EntryName, int VectorLoads, int VectorLoadsInLoops, int GlobalVectorLoads, int VectorStores,
    IReadOnlyList<string> ApproximateInstructions, IReadOnlyList<string> DoubleInstructions)
{
    static readonly Regex Entry = new(@"\.entry\s+([A-Za-z_$][\w$]*)", RegexOptions.Compiled);
    // Global or generic (no state space) only: ld.local/.param/.shared.v4 are not loads from the tensors.
    static readonly Regex VectorLoad = new(@"^ld(\.global)?(\.(nc|ca|cg|cs|lu|cv|weak|relaxed|gpu|sys))*\.v4\.(f32|b32|u32|s32)\s", RegexOptions.Compiled);
    static readonly Regex VectorStore = new(@"^st(\.global)?(\.(wb|cg|cs|wt|weak|relaxed|gpu|sys))*\.v4\.(f32|b32|u32|s32)\s", RegexOptions.Compiled);
    static readonly Regex Label = new(@"^([A-Za-z_$][\w$]*):$", RegexOptions.Compiled);
    static readonly Regex Branch = new(@"^bra(\.uni)?\s+([A-Za-z_$][\w$]*)\s*;", RegexOptions.Compiled);
    static readonly Regex Approximate = new(@"^[\w.]*\.approx\b", RegexOptions.Compiled);
    static readonly Regex Double = new(@"^[a-z][\w.]*\.f64\b", RegexOptions.Compiled);

    /// <summary>Reads <paramref name="ptx"/>.</summary>
    public static PtxStructure Read(string ptx)
    {
        string entry = Entry.Match(ptx) is { Success: true } m ? m.Groups[1].Value : "?";
        int loads = 0, stores = 0, global = 0;
        var approximate = new List<string>();
        var doubles = new List<string>();
        var labels = new Dictionary<string, int>();     // label -> instruction index
        var backBranches = new List<(int From, int To)>(); // branches to an earlier label: loops
        var loadAt = new List<int>();
        int index = 0;
        foreach (string raw in ptx.Split('\n'))
        {
            string line = raw.Trim();
            int comment = line.IndexOf("//", StringComparison.Ordinal);
            if (comment >= 0) line = line[..comment].TrimEnd();
            if (Label.Match(line) is { Success: true } label) { labels[label.Groups[1].Value] = index; continue; }
            if (line.Length == 0 || line[0] == '.' || line[0] == '{' || line[0] == '}') continue;
            index++;
            if (line[0] == '@') line = line[(line.IndexOf(' ') + 1)..].TrimStart(); // a predicated instruction
            if (Branch.Match(line) is { Success: true } branch && labels.TryGetValue(branch.Groups[2].Value, out int target))
                backBranches.Add((index, target));
            if (VectorLoad.IsMatch(line)) { loads++; loadAt.Add(index); if (line.StartsWith("ld.global", StringComparison.Ordinal)) global++; }
            if (VectorStore.IsMatch(line)) stores++;
            if (Approximate.IsMatch(line)) approximate.Add(line);
            if (Double.IsMatch(line)) doubles.Add(line);
        }
        int inLoops = loadAt.Count(at => backBranches.Any(b => b.To < at && at < b.From));
        return new PtxStructure(entry, loads, inLoops, global, stores, approximate, doubles);
    }
}
