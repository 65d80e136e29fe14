using GpuActivations.Bench;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The device agreement check behind <c>accuracy --device-agreement</c> on a small sample (2^16 inputs per op form,
/// seed 1, the command's shape): every activation's forward and derivative as the ILGPU kernels on ILGPU's CPU
/// accelerator give the SIMD path's bits, within the documented bounds of the reference (4 ulp forward, 8 scaled ulps
/// for derivatives). The long run in docs/numerics.md is this check with more inputs, so a change that parts the two
/// forms, or breaks the check itself, fails here first.
/// </summary>
[TestFixture]
public sealed class BenchDeviceAgreementTests
{
    const long Samples = 1 << 16;

    Accelerator? device;

    [OneTimeSetUp]
    public void CreateDevice() => device = DeviceAgreement.CreateDevice(DeviceAgreement.DefaultWarp);

    [OneTimeTearDown]
    public void DisposeDevice() => device?.Dispose();

    public static IEnumerable<TestCaseData> Forms => OpForm.Select(null).Select(op => new TestCaseData(op).SetArgDisplayNames(op.ToString()));

    [TestCaseSource(nameof(Forms))]
    public void KernelsGiveTheSimdPathsBits(OpForm op)
    {
        // Chunks of 24576: two whole ones and a partial one, as the long run's last chunk is.
        var result = DeviceAgreement.Check(device!, op, Samples, seed: 1, chunkSize: 3 << 13);
        Assert.That(result.Inputs, Is.EqualTo(Samples));
        Assert.That(result.Differences.Select(d => $"x = {d.X:R}: device {d.Device:R}, SIMD {d.Simd:R}"), Is.Empty);
        Assert.That(result.Identical, Is.EqualTo(Samples));
        // The bounds docs/numerics.md states: 4 ulp forward, 8 scaled ulps for derivatives (as BackwardTests hold them).
        Assert.That(result.DeviceMaxUlp, Is.LessThanOrEqualTo(op.Derivative ? 8 : 4), $"at x = {result.DeviceWorstInput:R}");
    }

    [Test]
    public void ComparisonCountsAnyOtherBitsAsADifferenceButNotAnotherNaN()
    {
        var op = OpForm.Select(new HashSet<string> { "Sigmoid" })[0];
        float[] x = [0.5f, 1f, float.NaN, -2f];
        float[] simd = new float[x.Length];
        op.RunSimd(x, [1f, 1f, 1f, 1f], simd);
        float[] device = [.. simd];
        device[1] = simd[1] * 1.5f;
        device[2] = BitConverter.UInt32BitsToSingle(0xFFC00001);
        var result = DeviceAgreement.Compare(op, x, device, simd, x.Length);
        Assert.That(result.Identical, Is.EqualTo(3));
        Assert.That(result.Differences.Select(d => d.X), Is.EqualTo(new[] { 1f }));
        Assert.That(result.DeviceMaxUlp, Is.EqualTo(result.Differences[0].DeviceUlp));
        Assert.That(result.DeviceMaxUlp, Is.GreaterThan(result.SimdMaxUlp));
        Assert.That(result.DeviceWorstInput, Is.EqualTo(1f));
    }

    [Test]
    public void InputsAreReproducibleAndHalfOfThemBitPatterns()
    {
        var x = Enumerable.Range(0, 1 << 16).Select(i => DeviceAgreement.Input(1, i)).ToArray();
        Assert.That(Enumerable.Range(0, x.Length).Select(i => DeviceAgreement.Input(1, i)), Is.EqualTo(x));
        Assert.That(DeviceAgreement.Input(2, 0), Is.Not.EqualTo(x[0]));
        var dense = x.Where((_, i) => i % 2 == 1).ToArray();
        var patterns = x.Where((_, i) => i % 2 == 0).ToArray();
        Assert.That(dense, Has.All.InRange(-30f, 30f));
        Assert.That(dense.Min(), Is.LessThan(-29.9f));
        Assert.That(dense.Max(), Is.GreaterThan(29.9f));
        // About 1/256 of random bit patterns are NaN and as many subnormal: some of each in 2^15, and both signs.
        Assert.That(patterns.Count(float.IsNaN), Is.GreaterThan(0));
        Assert.That(patterns.Count(float.IsSubnormal), Is.GreaterThan(0));
        Assert.That(patterns.Count(p => p < 0), Is.InRange(patterns.Length * 0.45, patterns.Length * 0.55));
        Assert.That(patterns.Count(p => MathF.Abs(p) > 1e30f), Is.GreaterThan(0));
    }
}
