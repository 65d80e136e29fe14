using System.Reflection;
using NUnit.Framework;

namespace GpuActivations.Tests.Hardening;

/// <summary>
/// Null for a reference-typed parameter is refused up front with <see cref="ArgumentNullException"/> naming that parameter,
/// on every public method and overload of every public type: spans, views, float32 and 16-bit forms alike.
/// </summary>
[NonParallelizable]
public sealed class NullArgumentTests
{
    Accelerator? acc;
    readonly List<IDisposable> owned = [];

    [OneTimeSetUp]
    public void Create() => acc = Accelerator.Create(AcceleratorKind.Cpu);

    [OneTimeTearDown]
    public void Dispose()
    {
        foreach (var d in owned) d.Dispose();
        acc?.Dispose();
    }

    /// <summary>
    /// The 16-bit span forms of Glu handed the null unit to the staged kernel, which ran on worker threads: a
    /// NullReferenceException per tile, wrapped in an AggregateException, where the float form named "unit".
    /// </summary>
    [Test]
    public void SixteenBitSpanGluRefusesANullUnitLikeTheFloatForm()
    {
        const int n = 300_000;
        var e = Assert.Throws<ArgumentNullException>(() => CpuKernels.Glu(null!, new Half[n], new Half[n], new Half[n]));
        Assert.That(e!.ParamName, Is.EqualTo("unit"));
        e = Assert.Throws<ArgumentNullException>(() => CpuKernels.Glu(null!, new BFloat16[n], new BFloat16[n], new BFloat16[n]));
        Assert.That(e!.ParamName, Is.EqualTo("unit"));
        e = Assert.Throws<ArgumentNullException>(() => CpuKernels.Glu(null!, new float[n], new float[n], new float[n]));
        Assert.That(e!.ParamName, Is.EqualTo("unit"));
    }

    /// <summary>Every (method, non-nullable reference parameter) pair of the public surface, for the test cases' names.</summary>
    public static IEnumerable<TestCaseData> Cases()
    {
        var context = new NullabilityInfoContext();
        foreach (var type in typeof(Accelerator).Assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
            foreach (var method in ReflectionCalls.PublicMethods(type))
            {
                var parameters = method.GetParameters();
                for (int i = 0; i < parameters.Length; i++)
                {
                    var p = parameters[i];
                    if (p.ParameterType.IsValueType || p.ParameterType.IsByRef) continue;
                    if (context.Create(p).WriteState != NullabilityState.NotNull) continue; // documented "null: the defaults"
                    yield return new TestCaseData(method, i).SetArgDisplayNames(ReflectionCalls.Describe(method), p.Name!);
                }
            }
    }

    /// <summary>
    /// Reflection over every public method of every public type (CpuKernels' spans, the accelerator's views, every storage
    /// type): with valid arguments except null for one reference parameter, the call throws ArgumentNullException whose
    /// ParamName is that parameter.
    /// </summary>
    [TestCaseSource(nameof(Cases))]
    public void NullReferenceParameterIsNamed(MethodInfo method, int nullIndex)
    {
        if (method.IsGenericMethodDefinition) method = method.MakeGenericMethod(method.GetGenericArguments().Select(_ => typeof(float)).ToArray());
        var parameters = method.GetParameters();
        var args = new List<object?>();
        if (!method.IsStatic) args.Add(Instance(method.DeclaringType!));
        for (int i = 0; i < parameters.Length; i++) args.Add(i == nullIndex ? null : Valid(parameters[i]));
        var e = ReflectionCalls.Catch(() => ReflectionCalls.Call(method, [.. args]));
        Assert.That(e, Is.Not.Null, $"{ReflectionCalls.Describe(method)} accepted null {parameters[nullIndex].Name}");
        Assert.That(e, Is.TypeOf<ArgumentNullException>(), $"{ReflectionCalls.Describe(method)} with null {parameters[nullIndex].Name}: {e}");
        Assert.That(((ArgumentNullException)e!).ParamName, Is.EqualTo(parameters[nullIndex].Name));
    }

    [Test]
    public void TheSurfaceHasNullableReferenceParameters()
        => Assert.That(Cases().Count(), Is.GreaterThanOrEqualTo(30), "the reflection found fewer (method, parameter) pairs than the API has");

    object Instance(Type type)
    {
        if (type == typeof(Accelerator)) return acc!;
        throw new InvalidOperationException($"no test instance of {type}: add one to {nameof(NullArgumentTests)}.{nameof(Instance)}");
    }

    /// <summary>The element count a tensor parameter gets: shapes are 3 rows of 4 columns (PReLU: 3 channels).</summary>
    static int LengthOf(string name) => name switch
    {
        "alpha" or "dAlpha" or "targets" or "losses" => 3,
        "packed" or "dPacked" => 24,
        _ => 12,
    };

    object? Valid(ParameterInfo p)
    {
        Type t = p.ParameterType;
        string name = p.Name!;
        if (ReflectionCalls.IsSpan(t)) return Array.CreateInstance(t.GetGenericArguments()[0], LengthOf(name));
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(BufferView<>))
            return typeof(NullArgumentTests).GetMethod(nameof(View), BindingFlags.NonPublic | BindingFlags.Instance)!
                .MakeGenericMethod(t.GetGenericArguments()[0]).Invoke(this, [LengthOf(name)]);
        if (t == typeof(Activation)) return Activation.Sigmoid; // has an output derivative, for the FromOutput forms
        if (t == typeof(GatedUnit)) return GatedUnit.SwiGlu;
        if (t == typeof(AcceleratorInfo)) return acc!.Info;
        if (t == typeof(long) || t == typeof(int))
        {
            long v = name switch { "rows" => 3, "cols" or "d" => 4, "deviceIndex" => 0, _ => 12 };
            return t == typeof(int) ? (object)(int)v : v;
        }
        if (t == typeof(float)) return 1f;
        if (t.IsEnum) return Enum.GetValues(t).GetValue(0);
        if (p.HasDefaultValue) return p.DefaultValue;
        if (!t.IsValueType) return null;
        return Activator.CreateInstance(t);
    }

    BufferView<T> View<T>(int length) where T : unmanaged
    {
        var b = acc!.Allocate<T>(length);
        b.CopyFrom(new T[length]);
        owned.Add(b);
        return b.View;
    }
}
