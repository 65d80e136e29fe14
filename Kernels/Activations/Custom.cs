using System.Runtime.CompilerServices;
using GpuActivations.Activations;
using GpuActivations.Cpu;

namespace GpuActivations
{
    /// <summary>
    /// A user-defined activation: a struct with the function and its derivative in plain C# on one float. Wrapped with
    /// <see cref="Activation.Custom{TFunction}(TFunction)"/> (or <see cref="GatedUnit.Custom{TFunction}(TFunction)"/> as a
    /// gate), it runs through every kernel family (elementwise forward and backward, gated forward and backward, every
    /// layout and storage type) on the CPU and on ILGPU accelerators without a kernel of its own: ILGPU specialises the
    /// library's kernels for the struct. Its methods must be code ILGPU can compile (no throw, no managed arrays, no
    /// <see cref="MathF.FusedMultiplyAdd"/> on GPUs); fields are the function's parameters and travel as kernel arguments.
    /// </summary>
    public interface IActivationFunction
    {
        /// <summary>f(x).</summary>
        float Forward(float x);

        /// <summary>f'(x), the backward pass's factor: dx = dy f'(x).</summary>
        float Derivative(float x);
    }
}

namespace GpuActivations.Activations
{
    /// <summary>A scalar function applied lane by lane (<see cref="ISimd{TSelf}.Map{TF}"/>).</summary>
    internal interface ILaneFunction
    {
        /// <summary>The function at <paramref name="x"/>.</summary>
        float Invoke(float x);
    }

    /// <summary>A user function's forward as a lane function.</summary>
    internal readonly struct ForwardLane<TFunction> : ILaneFunction where TFunction : struct, IActivationFunction
    {
        readonly TFunction function;
        public ForwardLane(TFunction function) => this.function = function;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Invoke(float x) => function.Forward(x);
    }

    /// <summary>A user function's derivative as a lane function.</summary>
    internal readonly struct DerivativeLane<TFunction> : ILaneFunction where TFunction : struct, IActivationFunction
    {
        readonly TFunction function;
        public DerivativeLane(TFunction function) => this.function = function;
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Invoke(float x) => function.Derivative(x);
    }

    /// <summary>A user-defined activation as the library's operator: its scalar code applied to each lane.</summary>
    internal readonly struct CustomOp<TFunction> : IActivationOp where TFunction : struct, IActivationFunction
    {
        readonly TFunction function;
        public CustomOp(TFunction function) => this.function = function;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Invoke<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Map(x, new ForwardLane<TFunction>(function));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Derivative<TV>(TV x) where TV : unmanaged, ISimd<TV> => TV.Map(x, new DerivativeLane<TFunction>(function));
    }

    /// <summary>A user-defined activation as a gate: act(g) and act'(g).</summary>
    internal readonly struct CustomGate<TFunction> : IGate where TFunction : struct, IActivationFunction
    {
        readonly TFunction function;
        public CustomGate(TFunction function) => this.function = function;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Value<TV>(TV g) where TV : unmanaged, ISimd<TV> => TV.Map(g, new ForwardLane<TFunction>(function));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Derivative<TV>(TV g, TV value) where TV : unmanaged, ISimd<TV> => TV.Map(g, new DerivativeLane<TFunction>(function));
    }

    /// <summary>
    /// A user function behind <see cref="Activation"/> and <see cref="GatedUnit"/>: hands its operator struct to the
    /// visitors, so the one generic path per op serves it like a built-in.
    /// </summary>
    internal abstract class CustomFunction : IEquatable<CustomFunction>
    {
        /// <summary>The function's struct type name.</summary>
        public abstract string Name { get; }

        /// <summary>Visits the activation operator.</summary>
        public abstract TResult Accept<TVisitor, TResult>(ref TVisitor visitor) where TVisitor : struct, IActivationVisitor<TResult>;

        /// <summary>Visits the gate (no clamp).</summary>
        public abstract TResult AcceptGate<TVisitor, TResult>(ref TVisitor visitor) where TVisitor : struct, IGateVisitor<TResult>;

        /// <inheritdoc/>
        public abstract bool Equals(CustomFunction? other);
    }

    /// <summary>The function of type <typeparamref name="TFunction"/>.</summary>
    internal sealed class CustomFunction<TFunction>(TFunction function) : CustomFunction where TFunction : struct, IActivationFunction
    {
        public override string Name => typeof(TFunction).Name;

        public override TResult Accept<TVisitor, TResult>(ref TVisitor visitor) => visitor.Visit(new CustomOp<TFunction>(function));

        public override TResult AcceptGate<TVisitor, TResult>(ref TVisitor visitor) => visitor.Visit(new CustomGate<TFunction>(function), 0f);

        public override bool Equals(CustomFunction? other) => other is CustomFunction<TFunction> same && function.Equals(same.Function);

        public override bool Equals(object? obj) => Equals(obj as CustomFunction);

        public override int GetHashCode() => HashCode.Combine(typeof(TFunction), function);

        TFunction Function => function;
    }
}
