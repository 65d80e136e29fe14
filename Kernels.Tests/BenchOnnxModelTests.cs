using GpuActivations.Bench;
using GpuActivations.Reference;
using NUnit.Framework;

namespace GpuActivations.Tests;

/// <summary>
/// The main job's hand-written ONNX encoder: the protobuf wire format on the examples of the protobuf encoding guide,
/// and models that ONNX Runtime loads and that give the double reference's answer on a few inputs.
/// </summary>
[TestFixture]
public sealed class BenchOnnxModelTests
{
    [Test]
    public void VarintFieldIsEncodedAsTheProtobufGuideShows()
    {
        // protobuf.dev/programming-guides/encoding: field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 74 65 73 74 69 6e 67.
        var w = new OnnxModel.ProtoWriter();
        w.Varint(1, 150);
        w.String(2, "testing");
        Assert.That(Convert.ToHexString(w.ToArray()), Is.EqualTo("089601" + "1207" + Convert.ToHexString("testing"u8)));
    }

    [Test]
    public void NegativeVarintTakesTenBytesAndFixed32IsLittleEndian()
    {
        var w = new OnnxModel.ProtoWriter();
        w.Varint(3, -1);
        w.Fixed32(2, 1f);
        Assert.That(Convert.ToHexString(w.ToArray()), Is.EqualTo("18" + "FFFFFFFFFFFFFFFFFF01" + "15" + "0000803F"));
    }

    [Test]
    public void BadShapeIsRejectedWithTheArgumentNamed()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => OnnxModel.UnaryFloat("Relu", [4, 0]));
        Assert.That(e!.ParamName, Is.EqualTo("shape"));
    }

    static readonly float[] Inputs = [-6f, -2.5f, -1f, -0.25f, 0f, 0.5f, 1f, 3f, 7.5f];

    /// <summary>
    /// Each elementwise op ONNX has, run once through ONNX Runtime, against the reference. The bound checks the model
    /// (operator, attributes, shapes), not ONNX Runtime's accuracy, which the main job reports: 2e-5 relative plus 1e-6
    /// absolute (its tails flush to 0), tight enough to tell exact GELU from the tanh form (1.8e-4 apart at x = 1) and
    /// HardSigmoid's alpha 1/6 from ONNX's default 0.2.
    /// </summary>
    [TestCase("Sigmoid")]
    [TestCase("Tanh")]
    [TestCase("Relu")]
    [TestCase("LeakyRelu")]
    [TestCase("Elu")]
    [TestCase("Gelu")]
    [TestCase("GeluTanh")]
    [TestCase("Softplus")]
    [TestCase("HardSigmoid")]
    [TestCase("HardSwish")]
    public void ElementwiseModelGivesTheReferenceAnswer(string name)
    {
        var op = Catalog.Find(name)!;
        float[] y = OnnxPeer.Evaluate(op, Inputs, 1, Inputs.Length)!;
        var a = op.Activation!;
        for (int i = 0; i < Inputs.Length; i++)
        {
            double expected = ScalarReference.Evaluate(op.Reference, Inputs[i], a.Alpha, a.Beta, a.Threshold);
            Assert.That(Math.Abs(y[i] - expected), Is.LessThanOrEqualTo(2e-5 * Math.Abs(expected) + 1e-6), $"{name}({Inputs[i]}) = {y[i]}, reference {expected}");
        }
    }

    [TestCase("Softmax", false)]
    [TestCase("LogSoftmax", true)]
    public void RowwiseModelNormalisesAlongTheLastAxis(string name, bool log)
    {
        const int Rows = 3, Cols = 5;
        float[] x = [.. Enumerable.Range(0, Rows * Cols).Select(i => (float)Math.Sin(i) * 4f + (i / Cols) * 100f)];
        float[] y = OnnxPeer.Evaluate(Catalog.Find(name)!, x, Rows, Cols)!;
        double[] expected = ScalarReference.SoftmaxExact(x, Rows, Cols, log);
        for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(expected[i]).Within(1e-5), $"element {i}");
    }

    [Test]
    public void OpsOnnxLacksHaveNoNode()
    {
        Assert.That(OnnxPeer.Node(Catalog.Find("SwiGlu")!), Is.Null);
        Assert.That(OnnxPeer.Node(Catalog.Find("SiluBackward")!), Is.Null);
        Assert.That(OnnxPeer.Node(Catalog.Find("Silu-bf16")!), Is.Null);
    }
}
