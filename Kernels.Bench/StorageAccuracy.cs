using GpuActivations.Reference;

namespace GpuActivations.Bench;

/// <summary>
/// The fp16/bf16 half of docs/numerics.md: every activation on every one of the 65536 bit patterns of each 16-bit
/// format, against the double reference rounded once to that format. Reports the largest distance in steps of the
/// format and the share of results that are exactly the correctly rounded value.
/// </summary>
public static class StorageAccuracy
{
    /// <summary>One activation in one format: worst distance, its input, and the correctly rounded share.</summary>
    public sealed record Row(string Op, string Format, int MaxUlp, float WorstInput, double CorrectlyRounded);

    /// <summary>Runs the exhaustive sweep on <paramref name="accelerator"/>.</summary>
    public static List<Row> Run(Accelerator accelerator)
    {
        var rows = new List<Row>();
        ushort[] bits = Enumerable.Range(0, 65536).Select(b => (ushort)b).ToArray();
        foreach (bool bf16 in new[] { false, true })
        {
            Func<ushort, float> widen = bf16 ? StorageReference.BFloat16ToSingle : StorageReference.HalfToSingle;
            Func<double, ushort> round = bf16 ? StorageReference.RoundBFloat16 : StorageReference.RoundHalf;
            foreach (var (activation, id) in Catalog.Activations)
            {
                ushort[] y = bf16 ? RunBFloat16(accelerator, activation, bits) : RunHalf(accelerator, activation, bits);
                int worst = 0, exact = 0;
                float worstX = 0;
                for (int i = 0; i < bits.Length; i++)
                {
                    float x = widen(bits[i]);
                    double expected = ScalarReference.Evaluate(id, x, activation.Alpha, activation.Beta, activation.Threshold);
                    int d = Distance(y[i], expected, widen, round);
                    if (d == 0) exact++;
                    if (d > worst) { worst = d; worstX = x; }
                }
                rows.Add(new Row(activation.ToString(), bf16 ? "bf16" : "fp16", worst, worstX, (double)exact / bits.Length));
            }
        }
        return rows;
    }

    /// <summary>Steps of the format from the correctly rounded value; NaN matches NaN; below float32's smallest normal, flushing is accepted.</summary>
    static int Distance(ushort actual, double expected, Func<ushort, float> widen, Func<double, ushort> round)
    {
        float a = widen(actual);
        if (double.IsNaN(expected) || float.IsNaN(a)) return double.IsNaN(expected) && float.IsNaN(a) ? 0 : int.MaxValue;
        if (Math.Abs(expected) < 1.17549435e-38 && Math.Abs(a) <= 1.17549435e-38) return 0;
        return Math.Abs(StorageReference.Ordinal(actual) - StorageReference.Ordinal(round(expected)));
    }

    static ushort[] RunHalf(Accelerator accelerator, Activation activation, ushort[] bits)
    {
        using var x = accelerator.Allocate<Half>(bits.Select(BitConverter.UInt16BitsToHalf).ToArray());
        using var y = accelerator.Allocate<Half>(bits.Length);
        accelerator.Apply(activation, x, y);
        return y.ToArray().Select(BitConverter.HalfToUInt16Bits).ToArray();
    }

    static ushort[] RunBFloat16(Accelerator accelerator, Activation activation, ushort[] bits)
    {
        using var x = accelerator.Allocate<BFloat16>(bits.Select(BFloat16.FromBits).ToArray());
        using var y = accelerator.Allocate<BFloat16>(bits.Length);
        accelerator.Apply(activation, x, y);
        return y.ToArray().Select(v => v.Bits).ToArray();
    }
}
