using Microsoft.ML;

namespace MLNet.Attention.Persistence;

/// <summary>
/// Marks a transformer that is saved inside the ML.NET model zip by MLNet.Attention's generic loader and can be
/// loaded back by <c>mlContext.Model.Load</c> in any process, with no registration call.
/// </summary>
/// <remarks>
/// <para>Contract for an implementing type <c>T</c>:</para>
/// <list type="number">
/// <item><description>It is a non-generic, non-abstract class (nesting is fine) in an assembly the loading process can
/// resolve by its simple name (normally: the application references it).</description></item>
/// <item><description>Its <see cref="ICanSaveModel.Save(ModelSaveContext)"/> calls
/// <see cref="TorchModelPersistence.Save(ModelSaveContext, ITorchPersistable, Action{System.IO.BinaryWriter})"/>
/// with a callback that writes the transformer's own bytes (hyper-parameters first, then weights).
/// <see cref="Data.TorchTransformerBase"/> does this for its subclasses.</description></item>
/// <item><description>It declares (on the type itself, not inherited) a loader
/// <c>public static T Load(IHostEnvironment env, BinaryReader reader)</c> that reads exactly those bytes back.
/// The method is found by reflection; <see cref="TorchModelPersistence.Save(ModelSaveContext, ITorchPersistable, Action{System.IO.BinaryWriter})"/>
/// checks that it exists, so a missing loader fails at save time rather than at load time.</description></item>
/// </list>
/// <para>Model files are untrusted input: on load only types that implement this interface are instantiated, and only
/// through their <c>Load</c> method. Renaming or moving the type (namespace or assembly) breaks saved models; keep a
/// type with the old name, or re-save the model.</para>
/// </remarks>
public interface ITorchPersistable : ITransformer
{
}
