using System.Reflection;
using GpuActivations.Activations;
using ILGPU;
using NUnit.Framework;

namespace GpuActivations.Tests.Gates;

/// <summary>The catalog itself, without tools: it covers every kernel method and every op, and closes each family correctly.</summary>
[TestFixture]
[Category("Gates")]
public sealed class KernelCatalogTests
{
    /// <summary>
    /// The kernel methods of the library: public static void methods of the <c>*Kernels</c> classes in the ILGPU kernels'
    /// namespace whose parameters include an <see cref="ArrayView{T}"/> (entry points are public; the passes they share,
    /// e.g. <c>SoftmaxKernels.Row</c>, are private). A new one without a catalog entry fails here.
    /// </summary>
    static IEnumerable<MethodInfo> LibraryKernels()
        => typeof(GpuActivations.Kernels.ElementwiseKernels).Assembly.GetTypes()
            .Where(t => t.Namespace == typeof(GpuActivations.Kernels.ElementwiseKernels).Namespace && t.Name.EndsWith("Kernels", StringComparison.Ordinal))
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters().Any(p => p.ParameterType.IsGenericType
                && p.ParameterType.GetGenericTypeDefinition() == typeof(ArrayView<>)));

    [Test]
    public void EveryKernelMethodHasAnEntry()
    {
        var listed = KernelCatalog.Families.Select(f => f.Definition).ToHashSet();
        var missing = LibraryKernels().Where(m => !listed.Contains(m)).Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToList();
        Assert.That(missing, Is.Empty, "kernels without a KernelCatalog.Families entry (add one line there): " + string.Join(", ", missing));
        Assert.That(KernelCatalog.Families.Select(f => f.Name), Is.Unique);
    }

    [Test]
    public void AxesFillEveryGenericParameter()
    {
        foreach (KernelFamilyEntry family in KernelCatalog.Families)
            foreach (GateBackend backend in Enum.GetValues<GateBackend>())
            {
                int arity = family.Definition.IsGenericMethodDefinition ? family.Definition.GetGenericArguments().Length : 0;
                foreach (KernelAxis axis in family.Axes)
                    Assert.That(axis.Values(backend).Select(v => v.TypeArguments.Length).Distinct().Count(), Is.EqualTo(1), $"{family.Name}: axis {axis.Name} mixes arities");
                int filled = family.Axes.Sum(a => a.Values(backend)[0].TypeArguments.Length);
                Assert.That(filled, Is.EqualTo(arity), $"{family.Name} has {arity} generic parameters, its axes fill {filled}");
            }
    }

    /// <summary>Every family closes (MakeGenericMethod checks the constraints) and the names are unique; the counts are what the axes promise.</summary>
    [Test]
    public void SpecialisationsCloseWithTheExpectedCounts()
    {
        int activations = Activation.All.Count + 1; // the built-ins and the tests' TanhShrinkOp
        int withOutputDerivative = KernelCatalog.ActivationOps.Count(KernelCatalog.HasOutputDerivative);
        int gated = GatedUnit.All.Count;
        int unary = activations + 1; // and the single-slope PReLU
        int binary = activations + withOutputDerivative + gated;
        int storages = KernelCatalog.Storages.Count;
        var expected = new Dictionary<string, int>
        {
            ["Map"] = unary * storages, ["Map4"] = unary, ["Zip"] = binary * storages, ["Zip4"] = binary,
            ["ZipPacked"] = gated * storages, ["Gradient"] = gated * storages, ["GradientPacked"] = gated * storages,
            ["PRelu"] = storages, ["PReluBackwardInput"] = storages, ["PReluBackwardSlope"] = storages,
            ["SoftmaxRows"] = storages + 2, ["SoftmaxWarpRows"] = storages + 2, ["SoftmaxSplitMax"] = storages, ["SoftmaxSplitSum"] = storages,
            ["SoftmaxSplitWrite"] = storages + 2, ["SoftmaxBackwardRows"] = storages, ["SoftmaxBackwardWarpRows"] = storages,
            ["CrossEntropyRows"] = storages, ["CrossEntropyWarpRows"] = storages,
        };
        // The warp-shuffle kernels run on CUDA only: OpenCL takes the group and split plans.
        string[] ptxOnly = ["SoftmaxWarpRows", "SoftmaxBackwardWarpRows", "CrossEntropyWarpRows"];
        foreach (GateBackend backend in Enum.GetValues<GateBackend>())
        {
            var all = KernelCatalog.For(backend);
            var counts = expected.ToDictionary(e => e.Key, e => backend == GateBackend.Ptx || !ptxOnly.Contains(e.Key) ? e.Value : 0);
            Assert.That(all.Select(k => k.Name), Is.Unique);
            foreach ((string family, int count) in counts)
                Assert.That(all.Count(k => k.Family.Name == family), Is.EqualTo(count), $"{backend} {family}");
            Assert.That(all, Has.Count.EqualTo(counts.Values.Sum()));
            TestContext.Out.WriteLine($"{backend}: {all.Count} specialisations ({string.Join(", ", counts.Select(e => $"{e.Key} {e.Value}"))})");
        }
    }

    /// <summary>The catalog's reading of "has an output derivative" (the struct implements it) agrees with the public API's.</summary>
    [Test]
    public void OutputDerivativesMatchTheActivations()
    {
        foreach (Activation activation in Activation.All)
        {
            var visitor = new TypeOf();
            Type op = activation.Accept<TypeOf, Type>(ref visitor);
            Assert.That(KernelCatalog.HasOutputDerivative(op), Is.EqualTo(activation.HasOutputDerivative), activation.ToString());
        }
        Assert.That(KernelCatalog.HasOutputDerivative(typeof(TanhShrinkOp)), Is.False);
    }

    /// <summary>Each backend gets its own fma form, and only it.</summary>
    [Test]
    public void EachBackendUsesItsFmaForm()
    {
        Assert.That(KernelCatalog.For(GateBackend.Ptx).Where(k => k.Method.GetGenericArguments().Contains(typeof(EmulatedFma))), Is.Empty);
        Assert.That(KernelCatalog.For(GateBackend.OpenCL).Where(k => k.Method.GetGenericArguments().Contains(typeof(PtxFma))), Is.Empty);
        Assert.That(KernelCatalog.For(GateBackend.Ptx).Where(k => k.Method.GetGenericArguments().Contains(typeof(HostFma))), Is.Empty);
    }

    readonly struct TypeOf : IActivationVisitor<Type>
    {
        public Type Visit<TOp>(TOp op) where TOp : struct, IActivationOp => typeof(TOp);
    }
}
