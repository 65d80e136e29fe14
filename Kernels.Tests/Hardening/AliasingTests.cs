using System.Reflection;
using System.Runtime.InteropServices;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Arguments that share memory as bytes, whatever their element types: an output may be exactly an input of its type and
/// length (in place) where the op allows it, and must otherwise be disjoint from every other tensor argument.
/// </summary>
[NonParallelizable]
public sealed unsafe class AliasingTests
{
    /// <summary>
    /// Cross-entropy's int targets and float losses on one buffer, shifted by one element: each loss written overwrote
    /// the next row's target before that row was read, and the call gave five NaN losses instead of refusing.
    /// </summary>
    [Test]
    public void CrossEntropyRefusesTargetsOverlappingLossesAsBytes()
    {
        float[] raw = new float[7];
        var targets = MemoryMarshal.Cast<float, int>(raw.AsSpan(0, 6));
        targets.Fill(1);
        float[] logits = TestData.Logits(12, seed: 5, scale: 2f);
        var e = Assert.Throws<ArgumentException>(() =>
            CpuKernels.CrossEntropy(logits, MemoryMarshal.Cast<float, int>(raw.AsSpan(0, 6)), raw.AsSpan(1, 6), default, 6, 2));
        Assert.That(e!.ParamName, Is.EqualTo("losses"));
        Assert.That(MemoryMarshal.Cast<float, int>(raw.AsSpan(0, 6)).ToArray(), Is.All.EqualTo(1), "nothing written");

        // The accelerator path: two wrappers of the same host memory, int and float, are the same bytes too.
        using var acc = Accelerator.Create(AcceleratorKind.Cpu);
        using var memory = acc.Allocate<float>(7);
        memory.CopyFrom(new float[7]);
        using var targetView = acc.Wrap<int>(memory.NativeHandle, 6);
        using var lossView = acc.Wrap<float>(memory.NativeHandle + 4, 6);
        using var logitBuffer = acc.Allocate<float>(logits);
        e = Assert.Throws<ArgumentException>(() => acc.CrossEntropy(logitBuffer, targetView, lossView, default, 6, 2));
        Assert.That(e!.ParamName, Is.EqualTo("losses"));
    }

    /// <summary>One span pair of a CpuKernels method: the method, the two parameter indices, and whether exact overlap is allowed.</summary>
    public static IEnumerable<TestCaseData> Pairs()
    {
        foreach (var m in ReflectionCalls.PublicMethods(typeof(CpuKernels)))
        {
            var ps = m.GetParameters();
            for (int i = 0; i < ps.Length; i++)
                for (int j = 0; j < ps.Length; j++)
                {
                    if (i == j || !ReflectionCalls.IsSpan(ps[i].ParameterType) || !ReflectionCalls.IsSpan(ps[j].ParameterType)) continue;
                    if (!IsOutput(ps[j])) continue; // the second of the pair is an output; input pairs may share memory freely
                    if (IsOutput(ps[i]) && i > j) continue; // output pairs once
                    yield return new TestCaseData(m, i, j).SetArgDisplayNames(ReflectionCalls.Describe(m), ps[i].Name!, ps[j].Name!);
                }
        }
    }

    static bool IsOutput(ParameterInfo p) => p.ParameterType.GetGenericTypeDefinition() == typeof(Span<>);

    /// <summary>Elements per tensor parameter (3 rows of 4 columns; PReLU: 3 channels; packed: 2d per row).</summary>
    static int LengthOf(string name) => name switch
    {
        "alpha" or "dAlpha" or "targets" or "losses" => 3,
        "packed" or "dPacked" => 24,
        _ => 12,
    };

    /// <summary>Whether the docs let <paramref name="output"/> be exactly <paramref name="other"/> (same type and length, in place).</summary>
    static bool InPlaceAllowed(ParameterInfo other, ParameterInfo output)
        => other.ParameterType.GetGenericArguments()[0] == output.ParameterType.GetGenericArguments()[0]
           && LengthOf(other.Name!) == LengthOf(output.Name!)
           && !IsOutput(other) && other.Name is not ("alpha" or "losses" or "dAlpha") && output.Name is not ("losses" or "dAlpha");

    /// <summary>
    /// Every pair (any tensor, an output) of every CpuKernels method, on one block of native memory: the output starting 2
    /// and 4 bytes into the other and the other starting inside the output (partial overlap), and exactly on it where the
    /// docs do not allow in place, is refused with an ArgumentException naming one of the two, and the block is unchanged.
    /// </summary>
    [TestCaseSource(nameof(Pairs))]
    public void OverlapOfAnyTypesIsRefusedBeforeWriting(MethodInfo method, int a, int b)
    {
        var ps = method.GetParameters();
        int[] shifts = InPlaceAllowed(ps[a], ps[b]) ? [2, 4, -2, -4] : [0, 2, 4, -2, -4];
        foreach (int shift in shifts)
        {
            const int block = 4096, start = 1024;
            byte* mem = (byte*)NativeMemory.AlignedAlloc(block, 64);
            try
            {
                var bytes = new Span<byte>(mem, block);
                for (int k = 0; k < block; k++) bytes[k] = (byte)(k * 7 + 3);
                byte[] before = bytes.ToArray();
                var args = new object?[ps.Length];
                int next = 2048;
                for (int i = 0; i < ps.Length; i++)
                {
                    var p = ps[i];
                    if (ReflectionCalls.IsSpan(p.ParameterType))
                    {
                        int length = LengthOf(p.Name!);
                        int at = i == a ? start : i == b ? start + shift : (next += 128);
                        args[i] = new RawSpan((nint)(mem + at), length);
                    }
                    else args[i] = Value(p);
                }
                var e = ReflectionCalls.Catch(() => ReflectionCalls.Call(method, args));
                Assert.That(e, Is.Not.Null, $"{ReflectionCalls.Describe(method)}: {ps[b].Name} at {shift} bytes from {ps[a].Name} was accepted");
                Assert.That(e, Is.TypeOf<ArgumentException>(), $"{ps[b].Name} at {shift} bytes from {ps[a].Name}: {e}");
                Assert.That(((ArgumentException)e!).ParamName, Is.AnyOf(ps[a].Name, ps[b].Name), e!.Message);
                Assert.That(bytes.SequenceEqual(before), Is.True, $"{ps[b].Name} at {shift} bytes from {ps[a].Name}: refused after writing");
            }
            finally
            {
                NativeMemory.AlignedFree(mem);
            }
        }
    }

    [Test]
    public void ThePairsCoverEveryCpuKernelsMethod()
    {
        var covered = Pairs().Select(c => (MethodInfo)c.Arguments[0]!).Distinct().Count();
        Assert.That(covered, Is.EqualTo(ReflectionCalls.PublicMethods(typeof(CpuKernels)).Count()));
    }

    static object? Value(ParameterInfo p)
    {
        Type t = p.ParameterType;
        if (t == typeof(Activation)) return Activation.Sigmoid;
        if (t == typeof(GatedUnit)) return GatedUnit.SwiGlu;
        if (t == typeof(int)) return p.Name switch { "rows" => 3, _ => 4 };
        if (p.HasDefaultValue) return p.DefaultValue;
        return t.IsValueType ? Activator.CreateInstance(t) : null;
    }
}
